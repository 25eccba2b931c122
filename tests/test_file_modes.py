"""What Tipline writes to disk is its user's alone, whatever umask it was started with.

Every Tipline process sets umask 077 before it writes anything, and the data dir is created
(or corrected) with mode 0700: a copy of the SQLite database, the generated secrets, the file
store or the embedded Redis's dump is never readable by another account of the machine. The
processes here are started with the usual lax umask 022, as `make run` from a shell would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from keys import solve_work
from tests.conftest import free_port, wait_until_healthy
from tests.test_media import jpeg_with_gps

LAX_UMASK = 0o022


def clean_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """This machine's environment without any Tipline or Zalo setting, then ``settings``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "ZALO_"))}
    return {**base, "TIPLINE_DATA_DIR": str(data_dir), **settings}


def shared_with_others(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) with a group or other permission bit."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not path.is_symlink() and mode & 0o077:
            found[str(path.relative_to(root.parent))] = oct(mode & 0o777)
    return found


def tipline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tipline.cli", *args],
        env=env,
        umask=LAX_UMASK,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_makes_a_private_data_dir_and_private_files(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "data"
    done = tipline(clean_environment(fresh), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert (fresh / "tipline.db").exists() and sorted(p.name for p in (fresh / "secrets").iterdir())
    assert shared_with_others(fresh) == {}
    # A data dir made earlier with the lax umask (before this fix) is corrected at start.
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    done = tipline(clean_environment(existing), "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert shared_with_others(existing) == {}


def test_the_wsgi_entry_points_set_umask_077(
    tmp_path: Path, redis_server: str, database_url: str
) -> None:
    for module in ("tipline.wsgi", "tipline.wsgi_intake", "tipline.wsgi_public"):
        data = tmp_path / module
        env = clean_environment(
            data, TIPLINE_REDIS_URL=redis_server, TIPLINE_DATABASE_URL=database_url
        )
        probe = f"import os, {module}; print(oct(os.umask(0)))"
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            umask=LAX_UMASK,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "0o77", module
        assert shared_with_others(data) == {}


def _hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)"[^>]*value="([^"]*)"', html))


def _report_with_a_photo(base: str) -> None:
    """What an informant's browser does on /bao-tin, with one photo: the file store is used."""
    with httpx.Client(base_url=base, timeout=30) as browser:
        page = browser.get("/bao-tin").text
        form = re.search(r'data-challenge="([^"]+)" data-bits="(\d+)"', page)
        unit = re.search(r'<option value="([^"]+)"', page)
        assert form and unit, page
        fields = _hidden_fields(page)
        fields |= {
            "nonce": solve_work(form.group(1), int(form.group(2))),
            "unit": unit.group(1),
            "text": "Có người buôn bán ma túy ở hẻm 12",
        }
        sent = browser.post(
            "/bao-tin", data=fields, files={"files": ("anh.jpg", jpeg_with_gps(), "image/jpeg")}
        )
        assert sent.status_code == 200 and 'id="receipt-code"' in sent.text, sent.text


def test_the_demo_and_its_processes_write_nothing_others_can_read(tmp_path: Path) -> None:
    """`tipline demo` (web, worker, embedded Redis, simulator), a report with a photo, stop."""
    data = tmp_path / "demo"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "tipline.cli", "demo", "--port", str(port)],
            env=clean_environment(data, TIPLINE_POW_BITS="4"),
            umask=LAX_UMASK,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(f"{base}/healthz", lambda: demo.poll() is None, 120, log.read_text)
        _report_with_a_photo(base)
    finally:
        demo.send_signal(signal.SIGTERM)  # the demo stops its web and worker processes
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    written = {path.name for path in data.iterdir()}
    assert {"tipline.db", "secrets", "files", "redis.db", "demo-logins.json"} <= written, written
    found = shared_with_others(data)
    assert found == {}, f"{found}\n{log.read_text()[-2000:]}"
