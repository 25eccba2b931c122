"""The auditor's checkpoints in the UI (issue 19; issue 14's "the audit UI verifies against
the latest and shows its age"): Verify checks the chain against the witness, a checkpoint is
made, exported as a signed file and compared after upload; every step is audited; the page
speaks Vietnamese first."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import chain_hash
from tests.audit_helpers import add_events
from tests.databases import raw
from tests.triage_helpers import csrf_from, login
from tipline.audit import actions
from tipline.audit.chain import CHAINED, canonical
from tipline.jobs.worker import checkpoint_once
from tipline.models import AuditEvent
from tipline.models.audit_head import GENESIS_HASH
from tipline.runtime import Runtime

AUDITOR = "thanhtra"


@pytest.fixture
def auditor(client: FlaskClient, units: dict[str, str]) -> FlaskClient:
    response = login(client, AUDITOR, units[f"totp:{AUDITOR}"])
    assert response.status_code == 302
    return client


def post(client: FlaskClient, url: str, **extra: object) -> tuple[int, str, object]:
    page = client.get("/audit/verify").get_data(as_text=True)
    response = client.post(url, data={"csrf_token": csrf_from(page), **extra})
    return response.status_code, response.get_data(as_text=True), response


def audited(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def test_make_export_and_compare_a_checkpoint(auditor: FlaskClient, runtime: Runtime) -> None:
    page = auditor.get("/audit/verify").get_data(as_text=True)
    assert "Chưa có mốc kiểm toán nào." in page  # Vietnamese first
    code, html, _ = post(auditor, "/audit/checkpoints")
    assert code == 200 and 'id="checkpoint-made"' in html, html
    assert "Mốc được lưu chứng gần nhất" in html and "0 phút trước" in html
    made = audited(runtime, actions.AUDIT_CHECKPOINT)
    assert [e.actor_name for e in made] == [AUDITOR] and made[0].client_address == "127.0.0.1"

    code, body, response = post(auditor, "/audit/checkpoints/export")
    assert code == 200 and "attachment" in response.headers["Content-Disposition"]  # type: ignore[attr-defined]
    exported = json.loads(body)
    assert exported["format"] == "tipline-audit-checkpoint/1" and exported["signature"]
    assert [e.detail for e in audited(runtime, actions.AUDIT_EXPORT)] == [
        {"checkpoint_seq": str(exported["seq"])}
    ]

    add_events(runtime, 3)
    code, html, _ = post(
        auditor, "/audit/checkpoints/compare", checkpoint=(io.BytesIO(body.encode()), "cp.json")
    )
    assert code == 200 and 'class="verdict ok"' in html and "Khớp" in html, html

    # The history rewritten since (the table owner's attack): the same file says so.
    rewrite(runtime, seq=2)
    code, html, _ = post(
        auditor, "/audit/checkpoints/compare", checkpoint=(io.BytesIO(body.encode()), "cp.json")
    )
    assert code == 200 and "KHÔNG khớp" in html, html

    # A file edited by hand, or not a checkpoint at all, is refused as such.
    edited = body.replace(f'"seq": {exported["seq"]}', '"seq": 1')
    for upload in (edited, "not json", ""):
        code, html, _ = post(
            auditor,
            "/audit/checkpoints/compare",
            checkpoint=(io.BytesIO(upload.encode()), "cp.json"),
        )
        assert code == 400 and "Không phải mốc do hệ thống này ký" in html, upload
    compared = audited(runtime, actions.AUDIT_COMPARE)
    assert [e.detail["consistent"] for e in compared] == [
        "consistent",
        "inconsistent",
        "unreadable",
        "unreadable",
        "unreadable",
    ]
    assert all(e.actor_name == AUDITOR for e in compared)


def test_verify_checks_against_the_witness_and_shows_its_age(
    auditor: FlaskClient, runtime: Runtime
) -> None:
    add_events(runtime, 4)
    assert checkpoint_once(runtime) is not None
    code, html, _ = post(auditor, "/audit/verify")
    assert code == 200 and 'class="card verdict ok"' in html
    assert 'id="verified-against"' in html and "Đã đối chiếu với mốc kiểm toán" in html
    assert 'id="latest-checkpoint"' in html and "phút trước" in html
    # Rewritten with every hash recomputed: the chain alone would pass, the witness does not.
    rewrite(runtime, seq=3)
    code, html, _ = post(auditor, "/audit/verify")
    assert code == 200 and 'class="card verdict broken"' in html, html
    assert "differs from the signed checkpoint" in html
    verifies = audited(runtime, actions.AUDIT_VERIFY)
    assert [v.outcome for v in verifies] == ["ok", "broken"]
    assert verifies[0].detail["witnessed_seq"]
    # And no checkpoint is made over it.
    code, html, _ = post(auditor, "/audit/checkpoints")
    assert code == 409 and 'id="checkpoint-error"' in html
    soon = replace(runtime, config=runtime.config.with_overrides(checkpoint_minutes=0))
    assert checkpoint_once(soon) is None


def test_officers_cannot_reach_the_checkpoints(client: FlaskClient, units: dict[str, str]) -> None:
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    page = client.get("/triage/").get_data(as_text=True)
    for url in ("/audit/checkpoints", "/audit/checkpoints/export", "/audit/checkpoints/compare"):
        assert client.post(url, data={"csrf_token": csrf_from(page)}).status_code == 403


def rewrite(runtime: Runtime, *, seq: int) -> None:
    """The table owner edits event ``seq`` and recomputes every hash and the head."""
    runtime.engine.dispose()
    with raw(runtime.config.database_url) as db:
        db.execute("UPDATE audit_events SET object_id = 'changed' WHERE seq = ?", (seq,))
        previous = GENESIS_HASH
        for row in db.execute(f"SELECT seq, {', '.join(CHAINED)} FROM audit_events ORDER BY seq"):  # noqa: S608
            previous = chain_hash(previous, canonical(int(row[0]), list(row[1:])))
            db.execute("UPDATE audit_events SET hash = ? WHERE seq = ?", (previous, row[0]))
        db.execute("UPDATE audit_head SET hash = ?", (previous,))
