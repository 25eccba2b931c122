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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import pytest
from redis import Redis
from rq import Queue, Worker, get_current_job
from rq.job import JobStatus

from tipline.jobs.worker import TiplineWorker
from tipline.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
STARTED = "test:worker:started"
# Far above the second or so a stop takes, far below the minute RQ's listener could add.
STOP_DEADLINE = 30.0


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
                    [sys.executable, "-m", "tipline.cli", "worker"],
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
    # Waits of 4 s: redis-py reads time out after 5 s by default (a BLPOP of 60 s never ends).
    deadline = time.monotonic() + 60
    while (popped := redis.blpop([STARTED], timeout=4)) is None:
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
    queue = Queue("dispatch", connection=redis)
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


def test_the_command_listener_stops_at_once_when_it_read_the_unsubscribe_first(
    runtime: Runtime,
) -> None:
    """The order that cost RQ's listener a minute, made certain rather than left to chance."""
    worker = TiplineWorker(["dispatch"], connection=runtime.redis)
    worker.subscribe()
    assert worker.pubsub is not None
    worker.pubsub.unsubscribe()  # the listener reads the reply: nothing is subscribed now
    deadline = time.monotonic() + STOP_DEADLINE
    while worker.pubsub.subscribed:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopping = threading.Thread(target=worker.unsubscribe)
    stopping.start()
    stopping.join(timeout=STOP_DEADLINE)
    assert not stopping.is_alive(), "the listener still waits for a subscription"
