"""`tipline zalo send` signs as the services verify: from ZALO_*_FILE as well, and never
silently with the demo's secret outside `tipline demo`; the simulator as a process of its own.

It read ``ZALO_APP_ID`` and ``ZALO_OA_SECRET_KEY`` only, and signed with the demo's secret
when they were unset: on a production install set up with files, every event it sent was a
401 with no word about why. The smoke test without real Zalo (docs/deploy.md) runs
`tipline zalo simulator` beside the install and `tipline zalo send --sim` against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask

from tests.conftest import COMMUNE_OA, free_port
from tests.test_simulator import live_server
from tipline.app import create_app
from tipline.cli.zalo import zalo
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY, Config
from tipline.runtime import Runtime, install

USER = "8203617745519023411"
PROD_APP_ID = "1234567890123456789"
PROD_SECRET = "the-oa-secret-key-zalo-issued"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def production_url(config: Config, runtime: Runtime) -> Iterator[str]:
    """A Tipline without the simulator mounted, with an app of its own: a production tier."""
    app: Flask = create_app(
        config.with_overrides(
            simulator=False, zalo_app_id=PROD_APP_ID, zalo_oa_secret_key=PROD_SECRET
        )
    )
    install(runtime)
    with live_server(app) as url:
        yield url


def _send(url: str, env: dict[str, str], *extra: str) -> tuple[int, str]:
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ZALO_")}
    result = CliRunner().invoke(
        zalo,
        ["send", "--to", url, "--oa", COMMUNE_OA, "--user", USER, "--text", "Có cờ bạc", *extra],
        env={**clean, **env},
    )
    return result.exit_code, result.output


def test_send_reads_the_file_settings(production_url: str, tmp_path: Path) -> None:
    (tmp_path / "zalo_app_id").write_text(PROD_APP_ID + "\n")
    (tmp_path / "zalo_oa_secret_key").write_text(PROD_SECRET + "\n")
    code, output = _send(
        production_url,
        {
            "ZALO_APP_ID_FILE": str(tmp_path / "zalo_app_id"),
            "ZALO_OA_SECRET_KEY_FILE": str(tmp_path / "zalo_oa_secret_key"),
        },
    )
    assert code == 0 and output.startswith("HTTP 200"), output


def test_send_refuses_the_demo_secret_outside_the_demo(production_url: str) -> None:
    code, output = _send(production_url, {})
    assert code != 0
    assert "ZALO_OA_SECRET_KEY" in output and "not one" in output
    assert "HTTP" not in output  # nothing was posted


def test_the_demo_needs_no_settings(config: Config, runtime: Runtime) -> None:
    demo = create_app(
        config.with_overrides(
            zalo_app_id=DEMO_ZALO_APP_ID, zalo_oa_secret_key=DEMO_ZALO_OA_SECRET_KEY
        )
    )
    install(runtime)
    with live_server(demo) as url:
        code, output = _send(url, {})
    assert code == 0 and output.startswith("HTTP 200"), output


def test_the_simulator_runs_as_a_process_of_its_own(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "ZALO_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tipline.cli", "zalo", "simulator", "--port", str(port),
         "--data-dir", str(tmp_path / "sim")],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/_sim"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/messages", timeout=2).json() == []:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        tokens = subprocess.run(
            [sys.executable, "-m", "tipline.cli", "zalo", "simulator-tokens", COMMUNE_OA,
             "--data-dir", str(tmp_path / "sim")],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()  # fmt: skip
        assert len(tokens) == 2
        sent = httpx.post(
            f"{base}/v3.0/oa/message/cs",
            headers={"access_token": tokens[0]},
            json={"recipient": {"user_id": USER}, "message": {"text": "Đã nhận"}},
        ).json()
        # The token is the simulator's own; the reply window is closed (no interaction yet).
        assert sent["error"] in (0, -230), sent
        calls = httpx.get(f"{base}/messages").json()
        assert [c["user_id"] for c in calls] == [USER]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
