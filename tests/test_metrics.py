"""`tipline metrics`: Prometheus metrics on an internal port, scraped as Prometheus would.

A tip goes through intake, expansion and dispatch; a login fails; a reply fails with a Zalo
error code. The scrape shows each, and carries no tip id, receipt code, text or username.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, expand, free_port, run_jobs
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config, public_halves
from tipline.jobs.outbound import count_send_failure
from tipline.jobs.relay import drain
from tipline.models import Tip
from tipline.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Đường dây cá độ bóng đá ở quán cà phê Hoa Sữa"


def scrape(url: str, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, timeout=5).text
        except httpx.HTTPError as exc:
            if proc.poll() is not None:
                raise AssertionError(f"tipline metrics exited: {proc.communicate()[1]!r}") from exc
            assert time.monotonic() < deadline, "tipline metrics did not answer"
            time.sleep(0.1)


def test_metrics_are_scraped_from_an_internal_port_and_name_nothing_of_a_tip(
    client: FlaskClient,
    runtime: Runtime,
    config: Config,
    env: dict[str, str],
    units: dict[str, str],
    worker_beating: None,
) -> None:
    raw = event(text=TEXT, msg_id="metrics-1")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["dispatch"])  # the worker's job: its stage latency is observed
    assert login(client, "canbo", units["totp:canbo"], password="wrong").status_code == 401
    count_send_failure(runtime, "failed", "zalo -230: user has not interacted in 7 days")

    # As deploy/systemd/tipline-metrics.service runs it: the metrics tier, which reads the
    # database and Redis URLs and no secret (tipline.config.TIERS).
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tipline.cli", "metrics", "--port", str(port)],
        env={
            **env,
            **public_halves(config.secrets),
            "PATH": "/usr/bin:/bin",
            "TIPLINE_TIER": "metrics",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("tipline_scrape_errors") == 0, body
    assert value("tipline_intake_events_total") == 1
    assert value("tipline_queue_depth", queue="outbound") >= 1  # the acknowledgement waits
    assert value("tipline_workers_live") == 1
    assert value("tipline_pipeline_undispatched_tips") == 0
    assert value("tipline_login_failures_total", reason="password") == 1
    assert value("tipline_send_failures_total", delivery="failed", zalo_error="-230") == 1
    assert value("tipline_stage_seconds_count", stage="dispatch") == 1
    assert value("tipline_stage_seconds_bucket", stage="dispatch", le="+Inf") == 1
    assert value("tipline_oa_token_state", oa=COMMUNE_OA, state="missing") == 1
    assert value("tipline_quarantined_events") == 0

    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        secrets = [tip.public_id, tip.receipt_code, "canbo", "Hoa Sữa", "wrong"]
    for secret in secrets:
        assert secret not in body, f"{secret!r} in the metrics"

    # The example alerts (deploy/) name only metrics this scrape has.
    names = {name for name, _labels in samples}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "tipline-alerts.yml").read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"tipline_[a-z_]+", rule["expr"])
    }
    assert len(used) >= 10 and used <= names, sorted(used - names)


def test_no_web_tier_serves_metrics(config: Config) -> None:
    """Metrics live on their own internal port; nothing the proxy publishes answers them."""
    for kinds in ({}, {"staff_ui": False}, {"staff_ui": False, "public_form": True}):
        app = create_app(config, **kinds)
        answer = app.test_client().get("/metrics")
        assert answer.status_code in (302, 404) and b"tipline_" not in answer.get_data()
        app.extensions["tipline"].engine.dispose()
