"""A newcomer's first `make run`: what went wrong, each fixed.

- The worker started before Redis, or Redis went away a while: RQ logged "could not connect to
  Redis" every 2 s (41 times in 25 minutes). Now: one "waiting for Redis" line, and one line a
  minute during an outage.
- A login right after a restart answered 500 "database is locked": SQLite refuses a write
  from a transaction that began by reading once another connection committed (the worker,
  busy after a restart). Now the login runs again.
- demo-logins.json kept a password after it was changed in the app. Now the entry is marked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select, text

from tests.triage_helpers import login
from tipline.demo import seed, sync_logins, write_logins
from tipline.jobs.worker import live_workers
from tipline.keychain import rewrap_officer_key, unlock_officer_key
from tipline.models import AuditEvent, Officer
from tipline.runtime import Runtime


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


class LateRedis:
    """A redis-server on a unix socket that the test starts and stops when it likes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        until(self.socket.exists, "redis-server's socket", 10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.socket.unlink(missing_ok=True)


def test_a_worker_started_before_redis_waits_quietly_and_rides_out_an_outage(
    env: dict[str, str], tmp_path: Path, runtime: Runtime
) -> None:
    redis = LateRedis(tmp_path)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tipline.cli", "worker"],
            env={**os.environ, **env, "TIPLINE_REDIS_URL": redis.url},
            stderr=out,
            stdout=out,
            start_new_session=True,
        )
    try:
        time.sleep(3)  # the worker is up first, as after a reboot or `docker compose up`
        assert worker.poll() is None, log.read_text()
        redis.start()
        client = Redis.from_url(redis.url)
        until(lambda: live_workers(client), "the worker's first heartbeat")
        redis.stop()  # an outage of a few seconds
        time.sleep(7)
        redis.start()
        client = Redis.from_url(redis.url)
        until(lambda: live_workers(client), "the worker's heartbeat after the outage")
        assert worker.poll() is None, log.read_text()
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=20)
        redis.stop()
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len(lines), "every line a JSON record:\n" + "\n".join(lines)
    assert all({"time", "level", "request_id", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    # One line each time Redis is awaited (before it started, during the outage), and RQ's
    # own complaint at most once a minute: not one every 2 s of each outage.
    assert sum("waiting for Redis" in m for m in messages) <= 2, messages
    assert sum("could not connect to Redis" in m for m in messages) <= 2, messages
    assert sum("outbox relay failed" in m for m in messages) <= 2, messages
    assert len(records) <= 14, "\n".join(m[:150] for m in messages)


def test_a_login_is_not_refused_because_a_worker_wrote_meanwhile(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's commit lands during the login's Argon2id (injected at that moment: the
    race a restart made likely). On SQLite that was a 500 "database is locked"."""
    import triage.auth

    real = triage.auth.verify_password
    writes = []

    def verify_while_the_worker_writes(stored: str, given: str) -> bool:
        if not writes:
            with runtime.engine.connect() as other:
                other.execute(text("UPDATE units SET name = name || '.'"))
                other.commit()
            writes.append(1)
        return bool(real(stored, given))

    monkeypatch.setattr(triage.auth, "verify_password", verify_while_the_worker_writes)
    answer = login(client, "canbo", units["totp:canbo"])
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert writes == [1]
    with runtime.sessions() as db:
        logins = db.scalar(
            select(func.count()).where(AuditEvent.action == "login")
        )
    assert logins == 1  # the retry recorded the login once


def test_demo_logins_forget_a_password_changed_in_the_app(runtime: Runtime) -> None:
    data_dir = runtime.config.data_dir
    logins = seed(runtime)
    assert logins is not None
    write_logins(data_dir, logins)
    assert sync_logins(runtime, data_dir) == []  # nothing changed yet
    entry = next(x for x in logins if x["username"] == "canbo.luongthetran")
    with runtime.sessions() as db, db.begin():
        officer = db.scalars(select(Officer).where(Officer.username == entry["username"])).one()
        key = unlock_officer_key(officer, entry["password"])
        cost = runtime.config.kdf_cost
        rewrap_officer_key(officer, key, new_password="mật khẩu mới của tôi", cost=cost)
    assert sync_logins(runtime, data_dir) == ["canbo.luongthetran"]
    stored = json.loads((data_dir / "demo-logins.json").read_text())
    changed = next(x for x in stored if x["username"] == "canbo.luongthetran")
    assert changed["password"] is None and changed["recovery_code"] is None
    assert changed["password_changed"] is True
    assert "mật khẩu mới" not in (data_dir / "demo-logins.json").read_text()
    others = [x for x in stored if x["username"] != "canbo.luongthetran"]
    assert others == [x for x in logins if x["username"] != "canbo.luongthetran"]
    assert sync_logins(runtime, data_dir) == []  # marked once


def test_an_idle_worker_keeps_its_connection_to_redis(
    env: dict[str, str], tmp_path: Path, runtime: Runtime
) -> None:
    """The demo's 41 "could not connect to Redis" lines: redis-py's connections time out reads
    after 5 s, RQ waits up to 405 s for a job on one, and the worker's own threads had filled
    the pool with such connections before RQ set its longer timeout. Idle, it timed out."""
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tipline.cli", "worker"],
            env={**os.environ, **env},
            stderr=out,
            stdout=out,
            start_new_session=True,
        )
    try:
        until(lambda: live_workers(runtime.redis), "the worker's first heartbeat")
        time.sleep(11)  # idle: two of redis-py's 5 s read timeouts
        assert worker.poll() is None, log.read_text()
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=20)
    messages = [r["message"] for r in records_of(log)]
    assert not [m for m in messages if "Redis" in m], messages


def records_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
