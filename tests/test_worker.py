"""`tipline worker` on SIGTERM, as systemd stops it (to the whole group, scheduler included).

Busy, it finishes the job in hand, starts no other and exits; idle, it exits at once. Neither
waits out RQ's minute-long listener (tipline.jobs.worker.TiplineWorker), and no job is lost:
the one it did not start waits on its queue for the next worker, which runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import pytest
from redis import Redis
from rq import Queue, Worker, get_current_job
from rq.job import JobStatus

from tipline.outbox import JOB_SERIALIZER
from tipline.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
STARTED = "test:worker:started"
# Far above the second or so a stop takes, far below the minute RQ's listener could add.
STOP_DEADLINE = 30.0


# `tipline worker`, which runs Tipline's jobs only (tipline.outbox.ALLOWED_JOBS), allowed
# this module's ``hold`` as well.
WORKER_WITH_HOLD = """
import sys
import tipline.jobs.worker as worker
worker.ALLOWED_JOBS = worker.ALLOWED_JOBS | {
    "tests.test_worker.hold",
    "tests.test_worker.routing_index_state",
}
sys.argv = ["tipline", "worker"]
from tipline.cli import main
main()
"""


def hold(name: str) -> str:
    """A job that says it started, then runs until the test lets it finish."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush(STARTED, name)
    if job.connection.blpop([f"test:worker:finish:{name}"], timeout=120) is None:
        raise RuntimeError(f"{name} was never let finish")
    return name


@pytest.fixture
def start_worker(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Popen[bytes]]]:
    """Starts `tipline worker` (logging to tmp_path/worker.log); kills what a failure left."""
    procs: list[Popen[bytes]] = []

    def start() -> Popen[bytes]:
        with open(tmp_path / "worker.log", "ab") as out:
            procs.append(
                Popen(
                    [sys.executable, "-c", WORKER_WITH_HOLD],
                    env={**os.environ, **env},
                    cwd=ROOT,  # `tests.test_worker.hold` imports from here
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def started(redis: Redis, log: Path) -> str:
    # Short waits in a loop: this client's reads time out after 5 s, so one BLPOP of 60 s
    # would fail at 5 s whenever a loaded machine starts the worker slowly.
    deadline = time.monotonic() + 60
    while (popped := redis.blpop([STARTED], timeout=2)) is None:
        assert time.monotonic() < deadline, log.read_text()
    return popped[1].decode()


def exit_code(proc: Popen[bytes], log: Path) -> int:
    """The worker's exit code, which must come within STOP_DEADLINE of its SIGTERM."""
    try:
        return proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        tail = log.read_text()[-3000:]
        raise AssertionError(f"no exit {STOP_DEADLINE} s after SIGTERM:\n{tail}") from None


def test_sigterm_finishes_the_job_in_hand_exits_promptly_and_loses_no_job(
    start_worker: Callable[[], Popen[bytes]], runtime: Runtime, tmp_path: Path
) -> None:
    redis = runtime.redis
    queue = Queue("dispatch", connection=redis, serializer=JOB_SERIALIZER)
    first, second = (queue.enqueue(hold, name, job_timeout=300) for name in ("first", "second"))
    log = tmp_path / "worker.log"

    busy = start_worker()
    assert started(redis, log) == "first"
    os.killpg(busy.pid, signal.SIGTERM)
    # The worker took the request (and marked it in Redis) while the job still runs.
    deadline = time.monotonic() + STOP_DEADLINE
    while not [w for w in Worker.all(connection=redis) if w.shutdown_requested_date]:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    redis.rpush("test:worker:finish:first", "go")
    assert exit_code(busy, log) == 0, log.read_text()
    assert first.get_status() == JobStatus.FINISHED and first.return_value() == "first"
    assert second.get_status() == JobStatus.QUEUED and queue.job_ids == [second.id]

    idle = start_worker()
    assert started(redis, log) == "second"
    redis.rpush("test:worker:finish:second", "go")
    deadline = time.monotonic() + STOP_DEADLINE
    while second.get_status() != JobStatus.FINISHED:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    os.killpg(idle.pid, signal.SIGTERM)
    assert exit_code(idle, log) == 0, log.read_text()

    # Each job ran once, and nothing is left started, failed or queued.
    assert redis.llen(STARTED) == 0
    assert second.return_value() == "second"
    assert queue.count == 0
    assert queue.started_job_registry.count == queue.failed_job_registry.count == 0


def test_the_worker_listens_on_no_command_channel(
    start_worker: Callable[[], Popen[bytes]], runtime: Runtime, tmp_path: Path
) -> None:
    """RQ's command channel (shutdown, kill-horse, stop-job by pub/sub) is nothing Tipline
    sends: systemd and compose stop a worker with SIGTERM. Its listener woke the worker every
    second for nothing (3 ms of CPU a wake on this machine, issue 15) and could hold a stop
    for a minute (redis-py's pub/sub read)."""
    queue = Queue("dispatch", connection=runtime.redis, serializer=JOB_SERIALIZER)
    job = queue.enqueue(routing_index_state)
    proc = start_worker()
    deadline = time.monotonic() + 60
    while job.get_status() != JobStatus.FINISHED:  # the worker is up and has taken a job
        assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
        time.sleep(0.05)
    (ours,) = [w for w in Worker.all(connection=runtime.redis) if w.pid == proc.pid]
    assert ours.pubsub_channel_name.encode() not in runtime.redis.pubsub_channels("rq:pubsub:*")
    assert runtime.redis.pubsub_numsub(ours.pubsub_channel_name) == [
        (ours.pubsub_channel_name.encode(), 0)
    ]
    os.killpg(proc.pid, signal.SIGTERM)
    assert exit_code(proc, tmp_path / "worker.log") == 0


def routing_index_state() -> list[int]:
    """Run by the worker: whether it built the place index and read the ward boundaries on its
    own (this job never asks for them), once its start-up build is done."""
    from tipline.jobs.worker import ROUTING_READY
    from tipline.routing.geo import load_boundaries
    from tipline.routing.places import _gazetteer

    ROUTING_READY.wait(60)
    return [_gazetteer.cache_info().currsize, load_boundaries.cache_info().currsize]


def test_the_worker_builds_the_place_index_before_its_first_job(
    start_worker: Callable[[], Popen[bytes]], runtime: Runtime, tmp_path: Path
) -> None:
    """The first tip after a start must not wait (1.4 s idle, 14 s under load) for the index."""
    queue = Queue("dispatch", connection=runtime.redis, serializer=JOB_SERIALIZER)
    job = queue.enqueue(routing_index_state)
    proc = start_worker()
    deadline = time.monotonic() + 60
    while job.get_status() != JobStatus.FINISHED:
        assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    assert exit_code(proc, tmp_path / "worker.log") == 0
    assert job.return_value() == [1, 1]
