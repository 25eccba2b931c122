"""Redis through Sentinel: ``TIPLINE_REDIS_URL=redis+sentinel://[USER:PASSWORD@]HOST:PORT
[,HOST:PORT…]/SERVICE`` (docs/deploy.md, "Redis Sentinel").

The URL's form is Flask-Limiter's own (its storage reads the same URL as given), and Tipline's
connection asks the Sentinels for the current master. Parsed here, and used against a real
redis-server and a real Sentinel monitoring it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from limits.storage import storage_from_string
from rq.scheduler import RQScheduler

from tests.conftest import free_port
from tests.test_deploy import redis_server_binary
from tipline.outbox import JOBS, job_queue
from tipline.redis_conn import SentinelTarget, connect, parse_sentinel_url


def test_sentinel_urls_are_parsed_and_bad_ones_refused() -> None:
    assert parse_sentinel_url("redis+sentinel://10.0.5.21:26379/tipline") == SentinelTarget(
        (("10.0.5.21", 26379),), "tipline"
    )
    full = parse_sentinel_url(
        "redis+sentinel://tipline-staff:p%40ss:w@10.0.5.21:26379,10.0.5.22:26379,"
        "[fd00::23]:26379/tipline-main"
    )
    assert full.sentinels == (("10.0.5.21", 26379), ("10.0.5.22", 26379), ("fd00::23", 26379))
    assert full.service == "tipline-main"
    assert (full.username, full.password) == ("tipline-staff", "p@ss:w")
    assert "p@ss" not in repr(full)
    for bad in (
        "redis+sentinel://10.0.5.21:26379",  # no service
        "redis+sentinel://10.0.5.21:26379/tipline/0",  # a database number: not supported
        "redis+sentinel://10.0.5.21/tipline",  # no port
        "redis://10.0.5.21:26379/tipline",
    ):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[str]:
    """A Redis master with a password and one Sentinel monitoring it; the Sentinel URL."""
    master_port, sentinel_port = free_port(), free_port()
    password = "sentinel-test-password"
    procs = [
        subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(master_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor tipline 127.0.0.1 {master_port} 1\n"
        f"sentinel auth-pass tipline {password}\nrequirepass {password}\n"
    )
    procs.append(
        subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    )
    url = f"redis+sentinel://:{password}@127.0.0.1:{sentinel_port}/tipline"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connect(url, tmp_path).ping()
                break
            except Exception:
                assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
                time.sleep(0.1)
        yield url
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_tipline_and_the_rate_limiter_reach_the_master_through_sentinel(
    sentinel: str, tmp_path: Path
) -> None:
    redis = connect(sentinel, tmp_path)
    job = job_queue("dispatch", redis).enqueue(JOBS["dispatch"].func, "tip", job_id="via-sentinel")
    assert redis.exists(job.key) and redis.lrange("rq:queue:dispatch", 0, -1) == [b"via-sentinel"]
    # RQ's scheduler builds a connection of its own from the worker's: it reaches the master.
    assert RQScheduler(["dispatch"], connection=redis).connection.ping()
    storage = storage_from_string(sentinel)  # Flask-Limiter's storage, from the same URL
    assert storage.check() and storage.incr("tipline-test", expiry=60) == 1
    assert [key for key in redis.scan_iter("LIMITS*")]
