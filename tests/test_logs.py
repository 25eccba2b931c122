"""Structured logs from every process: JSON lines with time, level and request id, and nothing
of a tip in them (tipline.logs).

A tip goes through the real processes (gunicorn's web tier, a worker at INFO level, the
`tipline zalo send` CLI); the tip's page is asked for by its id; then every line of every
process is read: each is a JSON object with ``time``, ``level`` and ``request_id``, and none
holds the tip's text, its id, its receipt code or its messages' ids.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, Stack
from tests.test_anonymity import USER, sent_to_informant, wait
from tipline.logs import JsonFormatter, redact, request_id
from tipline.models import Message, Tip
from tipline.runtime import Runtime

TEXT = "Kho hàng lậu ở cuối hẻm 42 đường Nguyễn Trãi, mở cửa lúc 2 giờ sáng"


def records(text: str, where: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"nothing logged by {where}"
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"{where}: not a JSON line: {line[:200]}") from exc
        assert {"time", "level", "message", "request_id"} <= set(record), (where, record)
        out.append(record)
    return out


def test_every_process_logs_json_lines_with_request_ids_and_no_tip(
    stack: Stack, runtime: Runtime
) -> None:
    sent = stack.tipline(
        "-v", "zalo", "send", "--to", stack.base_url, "--oa", COMMUNE_OA, "--user", USER,
        "--text", TEXT,
    )
    assert sent.returncode == 0, sent.stderr
    wait(lambda: sent_to_informant(stack), "the acknowledgement")
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        ids = [tip.public_id, tip.receipt_code, *db.scalars(select(Message.public_id))]
    # The tip's page by its id (a redirect to the login: the path still reaches the log).
    page = httpx.get(f"{stack.base_url}/triage/tips/{tip.public_id}", follow_redirects=False)
    assert page.status_code == 302
    given = page.headers["X-Request-Id"]
    chosen = httpx.get(f"{stack.base_url}/livez", headers={"X-Request-Id": "a" * 32})
    assert chosen.headers["X-Request-Id"] == "a" * 32  # the proxy's id, when it sends one

    # gunicorn writes a request's access line after its response: wait for the last one.
    wait(lambda: "a" * 32 in (stack.logs / "web.log").read_text(), "the access log line")
    web = records((stack.logs / "web.log").read_text(), "the web tier")
    worker = records((stack.logs / "worker.log").read_text(), "the worker")
    cli = records(sent.stderr, "tipline zalo send") if sent.stderr.strip() else []
    access = [r for r in web if r.get("logger") == "gunicorn.access"]
    assert any(r["request_id"] == given and "/triage/tips/<id>" in r["message"] for r in access)
    assert any(r["request_id"] == "a" * 32 for r in access)
    assert {r["level"] for r in web + worker} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    # Every worker line carries a run id (a job's, "job-…", or the relay's): never a tip's id.
    assert worker and all(r.get("request_id") for r in worker), "worker lines carry a run id"
    everything = json.dumps(web + worker + cli, ensure_ascii=False)
    for secret in [TEXT, "hẻm 42", USER, *ids]:
        assert secret not in everything, f"{secret!r} in the logs"


def test_the_formatter_redacts_ids_whatever_logs_them() -> None:
    token = request_id.set("req-1")
    try:
        record = logging.LogRecord(
            "rq.worker", logging.INFO, __file__, 1,
            "dispatch: job dispatch-%s for %s done", ("k60t7mfhkhah5j2h", "TL-9QXK-0M4R"), None,
        )
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "dispatch: job dispatch-<id> for TL-… done"
    assert line["request_id"] == "req-1" and line["level"] == "INFO"
    assert redact("OA 3886132808788132134 connected") == "OA 3886132808788132134 connected"
