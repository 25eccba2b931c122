"""Jobs are data: whoever can write to Redis cannot make a worker run code.

RQ's default serializer is pickle, so a job written straight into Redis by anyone holding its
password (the internet-facing tier did) ran arbitrary code in the worker, the process that
holds the key store. Every queue and worker of Tipline uses RQ's JSON serializer, and the
worker runs only the job functions Tipline enqueues (tipline.outbox.ALLOWED_JOBS): a pickled
job, or a JSON job naming any other function, is refused, logged and left failed.
"""

from __future__ import annotations

import logging
import pickle  # nosec B403 - the attacker's side of the test
import zlib
from pathlib import Path

import pytest
from rq import Callback, Queue
from rq.job import Job, JobStatus

from tests.conftest import run_jobs
from tipline.outbox import ALLOWED_JOBS, JOB_SERIALIZER, JOBS, job_queue
from tipline.routing.escalation import JOB as ESCALATION_JOB
from tipline.runtime import Runtime


class Marker:
    """Unpickling this writes a file: the code execution a pickled job gives."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.write_text, (self.path, "ran"))


def test_the_allow_list_is_exactly_what_tipline_enqueues(runtime: Runtime) -> None:
    assert {spec.func for spec in JOBS.values()} | {ESCALATION_JOB} == ALLOWED_JOBS
    assert job_queue("dispatch", runtime.redis).serializer is JOB_SERIALIZER


def test_a_pickled_job_written_into_redis_is_not_executed(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    # What an attacker with write access to Redis does: a job whose data unpickles to code.
    hostile = Queue("dispatch", connection=runtime.redis)  # RQ's default: pickle
    job = hostile.enqueue(print, Marker(marker), job_id="hostile-pickle")
    raw = runtime.redis.hget(job.key, "data")
    assert raw is not None
    pickle.loads(zlib.decompress(raw))  # noqa: S301  # nosec B301 - proof: unpickling runs code
    assert marker.exists()
    marker.unlink()

    with caplog.at_level(logging.WARNING, logger="tipline.jobs.worker"):
        run_jobs(runtime, ["dispatch"])
    assert not marker.exists()
    refused = Job.fetch("hostile-pickle", connection=runtime.redis, serializer=JOB_SERIALIZER)
    assert refused.get_status() == JobStatus.FAILED
    assert "hostile-pickle" in caplog.text and "refused" in caplog.text
    assert job_queue("dispatch", runtime.redis).count == 0


def test_a_json_job_naming_another_function_is_refused(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    queue = job_queue("outbound", runtime.redis)
    # Well-formed JSON, any importable callable: RQ alone would import and call it.
    queue.enqueue("pathlib.Path.touch", str(marker), job_id="hostile-json")
    # A callback is an import path run on success or failure: refused as well.
    queue.enqueue(
        JOBS["send"].func,
        "no-such-message",
        job_id="hostile-callback",
        on_failure=Callback("os.abort"),
    )
    with caplog.at_level(logging.WARNING, logger="tipline.jobs.worker"):
        run_jobs(runtime, ["outbound"])
    assert not marker.exists()
    for job_id in ("hostile-json", "hostile-callback"):
        job = Job.fetch(job_id, connection=runtime.redis, serializer=JOB_SERIALIZER)
        assert job.get_status() == JobStatus.FAILED
        assert job_id in caplog.text
    assert "pathlib.Path.touch" in caplog.text
