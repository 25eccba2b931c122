"""The informant's Zalo id after a full flow: in no page, log line, audit event, file or column.

One informant does everything an informant can (report with a photo, follow up, ask for the
status, rate the answer, stop), and officers, a commander and an auditor do everything they
can with it (inbox, open, download, reply, note, status, close, dashboard, search, audit
views, CSV export, verification). Then every place the system writes is searched for the id,
in both forms Zalo gives it (the OA-scoped user id and the app-scoped ``user_id_by_app``):

- every page and file the staff UI served, to every role;
- every log line: the web and worker processes' logs, and this process's log records;
- the audit log, read column by column (and through its CSV export, above);
- every column of every table, as plain values;
- every byte under the data directory (database, WAL, file store, secrets), and every Redis
  key and value.

The simulator's own state is Zalo's side, not ours: it is left out of the search.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import MetaData, select
from werkzeug.test import TestResponse

from tests.conftest import COMMUNE_OA, Stack
from tests.test_end_to_end import files_under, redis_dump
from tests.test_media import jpeg_with_gps
from tests.triage_helpers import csrf_from, login, post_form
from tipline.config import Config
from tipline.models import Attachment, AuditEvent, Message, OutboxEntry, ReplyAddress, Tip
from tipline.runtime import Runtime
from tipline.zalo.sender import user_id_by_app

USER = "7391045528810466999"
TEXT = "Ổ nhóm cho vay nặng lãi ở ấp Tân Hòa, xã Lương Thế Trân, đòi nợ bằng cách tạt sơn"


def wait(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sent_to_informant(stack: Stack) -> list[dict[str, str]]:
    calls = httpx.get(f"{stack.base_url}/_sim/messages", timeout=5).json()
    return [c for c in calls if c["user_id"] == USER and c["status"] == "ok"]


def informant_says(stack: Stack, *args: str) -> None:
    sent = stack.tipline(
        "zalo", "send", "--to", stack.base_url, "--oa", COMMUNE_OA, "--user", USER, *args
    )
    assert sent.returncode == 0, sent.stderr + sent.stdout


def test_the_informants_zalo_id_is_nowhere_after_a_full_flow(
    stack: Stack,
    runtime: Runtime,
    config: Config,
    client: FlaskClient,
    units: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    served: list[bytes] = []

    def keep(response: TestResponse) -> TestResponse:
        served.append(response.get_data())
        for name, value in response.headers.items():
            served.append(f"{name}: {value}".encode())
        return response

    # --- the informant reports, with a photo -----------------------------------------------
    informant_says(stack, "--text", TEXT)
    wait(lambda: sent_to_informant(stack), "the acknowledgement")
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(jpeg_with_gps())
    informant_says(stack, "--image", str(photo))

    def stored_attachment() -> Any:
        with runtime.sessions() as db:
            return db.scalars(select(Attachment).where(Attachment.state == "stored")).first()

    attachment = wait(stored_attachment, "the cleaned photo")
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        tip_url = f"/triage/tips/{tip.public_id}"
        receipt = tip.receipt_code

    # --- the duty officer works the tip ----------------------------------------------------
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    keep(client.get("/triage/"))
    keep(client.get(tip_url))
    keep(client.get(f"{tip_url}/attachments/{attachment.public_id}"))
    keep(post_form(client, tip_url, f"{tip_url}/reply", {"text": "Bạn biết tên người cầm đầu?"}))
    keep(post_form(client, tip_url, f"{tip_url}/note", {"text": "Đối chiếu hồ sơ cũ"}))
    keep(post_form(client, tip_url, f"{tip_url}/status", {"value": "verifying"}))
    wait(lambda: len(sent_to_informant(stack)) >= 2, "the officer's reply")

    # --- the informant follows up and asks for the status --------------------------------------
    informant_says(stack, "--text", "Người cầm đầu tên là Hùng, đi xe Vision màu đỏ")
    informant_says(stack, "--text", "tình trạng")
    status = wait(
        lambda: [m for m in sent_to_informant(stack) if receipt in m["text"]][1:],
        "the status answer",
    )
    assert "Đang xác minh" in status[-1]["text"] or "xác minh" in status[-1]["text"].lower()
    keep(client.get(tip_url))

    # --- the commander looks across units ------------------------------------------------------
    commander = client.application.test_client()
    assert login(commander, "chihuy", units["totp:chihuy"]).status_code == 302
    for url in ("/triage/", "/triage/dashboard/", tip_url, "/triage/search/?q=Vision"):
        assert keep(commander.get(url)).status_code == 200, url

    # --- closed as resolved: thank-you, the 1–5 question, the informant's score, then STOP ------
    keep(post_form(client, tip_url, f"{tip_url}/status", {"value": "resolved"}))
    wait(lambda: len(sent_to_informant(stack)) >= 4, "the thank-you")
    informant_says(stack, "--text", "5")

    def scored() -> Any:
        with runtime.sessions() as db:
            return db.scalars(select(Tip.satisfaction)).one()

    assert wait(scored, "the satisfaction score") == 5
    informant_says(stack, "--text", "STOP")

    def address_erased() -> bool:
        with runtime.sessions() as db:
            return all(a.sealed_address is None for a in db.scalars(select(ReplyAddress)))

    wait(address_erased, "the erased reply address")
    keep(commander.get("/triage/dashboard/"))

    # --- the auditor reviews everything ---------------------------------------------------------
    auditor = client.application.test_client()
    assert login(auditor, "thanhtra", units["totp:thanhtra"]).status_code == 302
    audit_page = keep(auditor.get("/audit/"))
    keep(auditor.get("/audit/anomalies"))
    csrf = csrf_from(audit_page.get_data(as_text=True))
    export = keep(auditor.post("/audit/export", data={"csrf_token": csrf}))
    assert export.status_code == 200 and b"tip_open" in export.get_data()
    assert keep(auditor.post("/audit/verify", data={"csrf_token": csrf})).status_code == 200

    def drained() -> bool:
        with runtime.sessions() as db:
            relayed = not db.scalars(
                select(OutboxEntry).where(OutboxEntry.enqueued_at.is_(None))
            ).first()
            return (
                relayed
                and not db.scalars(select(Message).where(Message.delivery == "queued")).first()
            )

    wait(drained, "the outbox to drain")

    # --- the search ---------------------------------------------------------------------------
    identities = [USER.encode(), user_id_by_app(config.zalo_app_id, USER).encode()]
    with runtime.sessions() as db:
        events = db.scalars(select(AuditEvent)).all()
        assert len(events) > 20
        audit_text = "\n".join(
            repr({c.key: getattr(e, c.key) for c in AuditEvent.__mapper__.column_attrs})
            for e in events
        ).encode()
    columns: list[bytes] = []
    metadata = MetaData()
    metadata.reflect(runtime.engine)
    with runtime.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(table.select()):
                columns += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    for log in stack.logs.iterdir():
        assert log.stat().st_size > 0, f"{log.name} is empty: the log search would mean nothing"
    places = {
        "pages served": b"\n".join(served),
        "process logs": files_under(stack.logs, stack.logs / "none"),
        "this process's log records": "\n".join(r.getMessage() for r in caplog.records).encode(),
        "audit events": audit_text,
        "database columns": b"\n".join(columns),
        "data directory": files_under(config.data_dir, config.data_dir / "zalo-simulator"),
        "redis": redis_dump(runtime.redis),
    }
    # The search can find things: the simulator (Zalo's side) does hold the id.
    assert USER.encode() in files_under(config.data_dir / "zalo-simulator", tmp_path / "none")
    assert TEXT.encode() in b"\n".join(served)  # the officer did read the tip
    for where, blob in places.items():
        assert blob, f"nothing collected from {where}"
        for identity in identities:
            assert identity not in blob, f"the informant's Zalo id found in {where}"
