"""The auditor's API: filters with pagination, CSV export (itself audited), anomaly flags."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.databases import raw
from tipline import audit
from tipline.audit import actions
from tipline.audit.chain import format_time
from tipline.models import AuditEvent, Officer, Outcome, Tip
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")


def officer(runtime: Runtime, username: str) -> Officer:
    with runtime.sessions() as session:
        found = session.scalars(select(Officer).where(Officer.username == username)).one()
        _ = found.unit
        return found


def at(runtime: Runtime, seq_from: int, when: datetime, step: timedelta) -> None:
    """Move events' times (test set-up only: goes around the trigger, breaks the chain)."""
    with raw(runtime.config.database_url) as db:
        seqs = db.execute("SELECT seq FROM audit_events WHERE seq >= ? ORDER BY seq", (seq_from,))
        for i, (seq,) in enumerate(seqs):
            moved = format_time(when + i * step)
            db.execute("UPDATE audit_events SET at = ? WHERE seq = ?", (moved, seq))


def test_filters_and_pages(runtime: Runtime) -> None:
    canbo, chihuy = officer(runtime, "canbo"), officer(runtime, "chihuy")
    with runtime.sessions() as session, session.begin():
        for i in range(7):
            audit.record(
                session,
                action=actions.TIP_OPEN,
                actor=canbo,
                object_id=f"tip{i}",
                client_address="10.1.1.1",
            )
        audit.record(
            session,
            action=actions.STATUS_CHANGE,
            actor=chihuy,
            object_id="tip3",
            detail={"status": "verifying"},
        )
    with runtime.sessions() as session:
        page = audit.query_events(session, officer="canbo", per_page=3, page=2)
        assert (page.total, page.pages, len(page.items)) == (7, 3, 3)
        assert page.has_next and page.has_prev
        assert [e.object_id for e in page.items] == ["tip3", "tip2", "tip1"]  # newest first
        by_tip = audit.query_events(session, object_id="tip3")
        assert [e.action for e in by_tip.items] == [actions.STATUS_CHANGE, actions.TIP_OPEN]
        assert by_tip.items[0].detail == {"status": "verifying"}
        assert audit.query_events(session, unit="v2025:96", action=actions.STATUS_CHANGE).total == 1
        assert audit.query_events(session, officer=canbo.public_id).total == 7
        future = datetime.now(UTC) + timedelta(hours=1)
        assert audit.query_events(session, since=future).total == 0


def test_csv_export_is_itself_an_event(runtime: Runtime) -> None:
    auditor = officer(runtime, "chihuy")
    with runtime.sessions() as session, session.begin():
        text = audit.export_csv(
            session,
            actor=auditor,
            client_address="10.9.9.9",
            action=[actions.UNIT_CREATE, actions.OA_ATTACH],
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["action"] for r in rows} == {actions.UNIT_CREATE, actions.OA_ATTACH}
    with runtime.sessions() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
        assert last is not None and last.action == actions.AUDIT_EXPORT
        assert last.actor_name == "chihuy" and last.client_address == "10.9.9.9"
        assert last.detail["rows"] == str(len(rows))
        assert audit.verify_chain(session).ok


def test_anomaly_flags(runtime: Runtime) -> None:
    canbo, chihuy = officer(runtime, "canbo"), officer(runtime, "chihuy")
    with runtime.sessions() as session, session.begin():
        tip = Tip(
            receipt_code="TL-TEST-0001",
            informant_alias="x" * 64,
            public_key=b"k",
            assignee_id=officer(runtime, "canbo2").id,
        )
        session.add(tip)
        session.flush()
        assigned_elsewhere = tip.public_id
        first = audit.record(session, action=actions.LOGIN, actor=canbo).seq
        for i in range(25):  # a burst, during the day
            audit.record(session, action=actions.TIP_OPEN, actor=canbo, object_id=f"tip{i}")
        audit.record(session, action=actions.TIP_OPEN, actor=canbo, object_id=assigned_elsewhere)
        audit.record(session, action=actions.TIP_OPEN, actor=chihuy, object_id=assigned_elsewhere)
        # A refused open: flagged as such, and as nothing else (nothing was read).
        audit.record(
            session,
            action=actions.TIP_OPEN,
            actor=canbo,
            object_id="other-units-tip",
            outcome=Outcome.DENIED,
        )
        for _ in range(6):
            audit.record(session, action=actions.LOGIN_FAILED, object_id=canbo.public_id)
    # 10:00 in Vietnam, one event every 10 s; then the last open moved to 02:00.
    day = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    at(runtime, first, day, timedelta(seconds=10))
    with runtime.sessions() as session:
        found = audit.anomalies(session, since=day - timedelta(days=1))
    kinds = [(a.kind, a.actor_name, a.count) for a in found]
    assert (audit.OPEN_BURST, "canbo", 26) in kinds
    assert [(a.actor_name, a.object_id) for a in found if a.kind == audit.DENIED_OPEN] == [
        ("canbo", "other-units-tip")
    ]
    assert [a.object_id for a in found if a.kind == audit.NOT_ASSIGNED_OPEN] == [
        assigned_elsewhere
    ]  # the officer, not the commander
    assert [a.count for a in found if a.kind == audit.FAILED_LOGINS] == [6]
    assert not [a for a in found if a.kind == audit.OFF_HOURS_OPEN]
    night = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # 02:00 in Vietnam
    at(runtime, first, night, timedelta(seconds=10))
    with runtime.sessions() as session:
        found = audit.anomalies(session, since=day - timedelta(days=1))
    assert len([a for a in found if a.kind == audit.OFF_HOURS_OPEN]) == 27
