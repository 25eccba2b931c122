"""Redis users per tier: only the workers may write RQ's keys.

Every tier held the one Redis password, so the internet-facing intake tier could write a job
into a queue the key-holding worker runs. deploy/make-secrets.sh now writes ACL users
(redis-auth.conf, included by deploy/redis.conf) and one URL per tier: here the real
redis-server runs them, and

- the intake tier's user reads RQ's keys for its health check and can neither enqueue a job,
  nor touch a session or a counter, nor publish a command to the workers;
- the staff tier's user keeps sessions, login back-off and the rate limiter, and cannot
  enqueue a job or publish to the workers;
- the workers' user runs the pipeline: webhook (intake) → expansion, relay, dispatch,
  acknowledgement (worker) → an officer's login and the tip (staff);
- no user is left without a password (``default`` is off).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from sqlalchemy import select

from tests.conftest import free_port
from tests.test_deploy import DEPLOY, redis_server_binary
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config
from tipline.counters import count
from tipline.jobs.worker import run_worker
from tipline.metrics import registry_for
from tipline.models import Tip
from tipline.outbox import JOBS, job_queue
from tipline.runtime import Runtime, install


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """deploy/redis.conf with the users deploy/make-secrets.sh writes; each tier's URL."""
    secrets = tmp_path_factory.mktemp("acl") / "secrets"
    port = free_port()
    subprocess.run(
        ["bash", str(DEPLOY / "make-secrets.sh"), str(secrets)],
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(port),
            "ZALO_APP_ID": "3608465248940903967",
            "ZALO_OA_SECRET_KEY": "oa-secret",
            "ZALO_APP_SECRET": "app-secret",
        },
        capture_output=True,
        check=True,
        timeout=60,
    )
    directory = secrets.parent / "data"
    directory.mkdir()
    args = [redis_server_binary(), str(DEPLOY / "redis.conf")]
    args += ["--include", str(secrets / "redis-auth.conf"), "--port", str(port)]
    args += ["--dir", str(directory)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
    urls = {
        tier: (secrets / name).read_text().strip()
        for tier, name in (
            ("worker", "redis_url"),
            ("staff", "redis_url_staff"),
            ("intake", "redis_url_intake"),
            ("metrics", "redis_url_metrics"),
        )
    }
    deadline = time.monotonic() + 20
    while True:
        try:
            Redis.from_url(urls["worker"]).ping()
            break
        except Exception:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server failed"
            time.sleep(0.05)
    yield {**urls, "port": str(port)}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def env(env: dict[str, str], acl_redis: dict[str, str]) -> dict[str, str]:
    """conftest's environment with the workers' Redis user: ``runtime`` is a worker's."""
    return {**env, "TIPLINE_REDIS_URL": acl_redis["worker"]}


def _cannot_enqueue_or_command(redis: Redis) -> None:
    with pytest.raises(NoPermissionError):
        job_queue("dispatch", redis).enqueue(JOBS["dispatch"].func, "forged", job_id="forged")
    for write in (
        lambda: redis.lpush("rq:queue:dispatch", "forged"),
        lambda: redis.hset("rq:job:forged", "data", b"x"),
        lambda: redis.zadd("rq:scheduled:dispatch", {"forged": 1}),
        lambda: redis.publish("rq:pubsub:any-worker", '{"command": "shutdown"}'),
        lambda: redis.flushall(),
        lambda: redis.execute_command("ACL", "SETUSER", "tipline-intake", "+@all"),
    ):
        with pytest.raises((NoPermissionError, ResponseError)):
            write()


def test_each_tier_has_its_user_and_only_the_workers_write_jobs(
    acl_redis: dict[str, str],
    runtime: Runtime,
    config: Config,
    units: dict[str, str],
) -> None:
    intake_redis = Redis.from_url(acl_redis["intake"])
    staff_redis = Redis.from_url(acl_redis["staff"])
    _cannot_enqueue_or_command(intake_redis)
    _cannot_enqueue_or_command(staff_redis)
    with pytest.raises(NoPermissionError):
        intake_redis.set("tipline:session:forged", b"x")
    # No way in without a user: the default user is off.
    with pytest.raises((AuthenticationError, ResponseError)):
        Redis(host="127.0.0.1", port=int(acl_redis["port"])).set("x", 1)

    # The pipeline, each tier on its own user.
    runtime.transit.rotate()
    intake = create_app(config.with_overrides(redis_url=acl_redis["intake"]), staff_ui=False)
    staff = create_app(config.with_overrides(redis_url=acl_redis["staff"]))
    install(runtime)  # the jobs run as the worker
    health = intake.test_client().get("/healthz")
    assert health.status_code == 200 and health.json is not None
    assert health.json["redis"] == "ok", health.json
    raw = event(text="Có người bán ma túy ở bến xe", msg_id="acl-1")
    posted = intake.test_client().post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert posted.status_code == 200, posted.json
    run_worker(runtime, burst=True)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatched_at is not None
    officer = staff.test_client()
    answer = login(officer, "canbo", units["totp:canbo"])
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert officer.get(f"/triage/tips/{tip.public_id}").status_code == 200
    worker_redis = Redis.from_url(acl_redis["worker"])
    assert list(worker_redis.scan_iter("tipline:session:*"))
    assert [key for key in worker_redis.scan_iter("*") if key.upper().startswith(b"LIMITS")]


def test_the_metrics_user_reads_what_a_scrape_needs_and_no_session(
    acl_redis: dict[str, str], runtime: Runtime, config: Config
) -> None:
    """`tipline metrics` had no user of its own: given the staff tier's, it could read the
    officers' sessions and write counters. Its user reads RQ, the counters and the
    heartbeats; the scrape reads everything it shows."""
    metrics_redis = Redis.from_url(acl_redis["metrics"])
    _cannot_enqueue_or_command(metrics_redis)
    worker_redis = Redis.from_url(acl_redis["worker"])
    worker_redis.set("tipline:session:someone", b"sealed")
    with pytest.raises(NoPermissionError):
        metrics_redis.get("tipline:session:someone")
    with pytest.raises(NoPermissionError):
        metrics_redis.hincrby("tipline:metrics:forged", "x", 1)
    count(runtime.redis, "login_failures", reason="password")
    scraper = Runtime(config.with_overrides(redis_url=acl_redis["metrics"]))
    body = generate_latest(registry_for(scraper)).decode()
    assert "tipline_scrape_errors 0.0" in body, body
    assert 'tipline_login_failures_total{reason="password"} 1.0' in body, body
