"""The processes of a production-like install, supervised as systemd would supervise them.

One gunicorn (`tipline serve`, 2 workers, the Zalo simulator mounted) and three `tipline worker`
processes, each in its own process group. A supervisor thread restarts any worker that exits,
for whatever reason, two seconds later, as deploy/systemd/tipline-worker@.service does
(``Restart=always``, ``RestartSec=2s``), and keeps count; ``kill_worker`` is SIGKILL to the
whole group, as ``systemctl kill -s KILL`` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import run_tipline

RESTART_DELAY = 2.0


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tipline.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _terminate(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    # A SIGKILLed leader leaves its group's other members (RQ's scheduler) to systemd too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Exit:
    worker: int
    returncode: int
    killed_by_test: bool


@dataclass
class Cluster:
    env: dict[str, str]
    logs: Path
    port: int
    workers: int = 3
    web: subprocess.Popen[bytes] | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # wall-clock times of kill_worker
    _killed: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.web = _spawn(["serve", "--port", str(self.port)], self.env, self.logs / "web.log")
        self.procs = [self._worker(i) for i in range(self.workers)]
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.web.poll() is not None:
                raise RuntimeError("web did not start:\n" + self.log_tail("web"))
            time.sleep(0.1)

    def _worker(self, index: int) -> subprocess.Popen[bytes]:
        return _spawn(["-v", "worker"], self.env, self.logs / f"worker{index}.log")

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is None:
                    continue
                with self._lock:
                    killed = proc.pid in self._killed
                    self.exits.append(Exit(index, code, killed))
                _terminate(proc, signal.SIGKILL)  # whatever of its group is left
                if self._stop.wait(RESTART_DELAY):
                    return
                self.procs[index] = self._worker(index)

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index`` and its group; the supervisor starts it again."""
        proc = self.procs[index]
        with self._lock:
            self._killed.add(proc.pid)
            self.kills.append(time.time())
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.killed_by_test]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for proc in [*self.procs, *([self.web] if self.web else [])]:
            _terminate(proc)

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def tipline(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_tipline(self.env, *args, timeout=timeout)
