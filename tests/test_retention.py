"""Retention: closed tips past their period are crypto-shredded; the unit is warned first."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import bindparam, create_engine, insert, inspect, select, text

from tests.conftest import COMMUNE_OA, expand, run_jobs
from tests.databases import Databases
from tests.test_dispatch import read_as, send
from tests.triage_helpers import csrf_from, login
from tests.zalo_events import event, signed_headers
from tipline.audit import actions
from tipline.config import Config
from tipline.intake.recording import dedup_key
from tipline.jobs.relay import drain
from tipline.keychain import NoKeyChain
from tipline.migrate import downgrade, upgrade
from tipline.models import (
    AuditEvent,
    InboundEvent,
    KeyGrant,
    Message,
    Notification,
    NotificationKind,
    Subject,
    Tip,
    TipStatus,
    utcnow,
)
from tipline.retention import retention_pass, shred_expired, warn_expiring
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")
TEXT = "Có người buôn bán ma túy ở hẻm 12"


def dispatched_tips(client: FlaskClient, runtime: Runtime, count: int) -> list[int]:
    for n in range(count):
        send(
            client,
            event(text=f"{TEXT} #{n}", msg_id=f"msg-retention-{n}", user=f"555000111222333{n}"),
        )
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        ids = list(session.scalars(select(Tip.id).order_by(Tip.id)))
    assert len(ids) == count
    return ids


def close(runtime: Runtime, tip_id: int, status: str | None, closed_at: datetime | None) -> None:
    with runtime.sessions() as session, session.begin():
        tip = session.get_one(Tip, tip_id)
        if status is not None:
            tip.status = status
        tip.closed_at = closed_at


def test_config_reads_retention_periods(config: Config) -> None:
    parsed = Config.from_env(
        {
            "TIPLINE_DATA_DIR": str(config.data_dir),
            "TIPLINE_RETENTION_DAYS": "resolved=400, spam=7",
            "TIPLINE_RETENTION_WARN_DAYS": "3",
        }
    )
    assert parsed.retention_period("resolved") == timedelta(days=400)
    assert parsed.retention_period("spam") == timedelta(days=7)
    assert parsed.retention_period("unfounded") == timedelta(days=180)
    assert parsed.retention_period("new") is None
    assert parsed.retention_warn_days == 3
    with pytest.raises(ValueError):
        Config.from_env(
            {"TIPLINE_DATA_DIR": str(config.data_dir), "TIPLINE_RETENTION_DAYS": "open=1"}
        )


def test_expired_tips_are_shredded_younger_and_open_ones_kept(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    old, young, open_tip = dispatched_tips(client, runtime, 3)
    now = utcnow()
    close(runtime, old, TipStatus.RESOLVED, now - timedelta(days=366))
    close(runtime, young, TipStatus.RESOLVED, now - timedelta(days=100))
    # Open, with an old closed_at left behind by a reopening: never shredded.
    close(runtime, open_tip, None, now - timedelta(days=1000))

    warned, shredded = retention_pass(runtime.sessions, runtime.config, now)
    assert (warned, shredded) == (0, 1)

    with runtime.sessions() as session:
        tip = session.get_one(Tip, old)
        assert tip.shredded_at is not None
        assert tip.status == TipStatus.RESOLVED and tip.unit is not None  # statistics stay
        grants = session.scalars(
            select(KeyGrant).where(KeyGrant.subject_kind == Subject.TIP, KeyGrant.subject_id == old)
        ).all()
        assert grants == []
        bodies = session.scalars(select(Message.sealed_body).where(Message.tip_id == old)).all()
        assert bodies and all(body == b"" for body in bodies)
        public_id = tip.public_id
        receipt = tip.receipt_code
        event_row = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == actions.TIP_SHREDDED, AuditEvent.object_id == public_id
            )
        ).one()
        assert event_row.actor_id is None
        assert TEXT not in str(event_row.detail) and "hẻm" not in str(event_row.detail)
        assert tip.reply_address is not None and tip.reply_address.sealed_address is None
        for kept in (young, open_tip):
            assert session.get_one(Tip, kept).shredded_at is None
            address = session.get_one(Tip, kept).reply_address
            assert address is not None and address.sealed_address is not None
    with pytest.raises(NoKeyChain):
        read_as(runtime, "canbo", old)
    assert read_as(runtime, "canbo", young)[0]["text"] == f"{TEXT} #1"
    assert read_as(runtime, "canbo", open_tip)[0]["text"] == f"{TEXT} #2"

    # A second pass finds nothing more to do.
    assert retention_pass(runtime.sessions, runtime.config, now) == (0, 0)

    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{public_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="tip-shredded"' in html and receipt in html
    assert TEXT not in html
    # Nor does search find it.
    found = client.get("/triage/search/", query_string={"q": "ma túy"}).get_data(as_text=True)
    assert receipt not in found
    with runtime.sessions() as session:
        assert session.get_one(Tip, young).receipt_code in found  # search itself works
    # Nothing can be done to a shredded tip: every action is refused and changes nothing.
    tip_url = f"/triage/tips/{public_id}"
    token = csrf_from(client.get("/triage/").get_data(as_text=True))
    before = audit_count(runtime)
    for action, data in [
        ("status", {"value": "verifying"}),
        ("note", {"text": "ghi chú"}),
        ("reply", {"text": "trả lời"}),
        ("escalate", {}),
    ]:
        refused = client.post(f"{tip_url}/{action}", data={"csrf_token": token, **data})
        assert refused.status_code == 409, action
    assert audit_count(runtime) == before
    with runtime.sessions() as session:
        assert session.get_one(Tip, old).status == TipStatus.RESOLVED


def test_the_unit_is_warned_once_before_expiry(client: FlaskClient, runtime: Runtime) -> None:
    (tip_id,) = dispatched_tips(client, runtime, 1)
    now = utcnow()
    close(runtime, tip_id, TipStatus.SPAM, now - timedelta(days=20))  # spam: 30 days
    config = runtime.config
    with runtime.sessions() as session, session.begin():
        assert warn_expiring(session, config, now) == 1
        assert warn_expiring(session, config, now + timedelta(days=1)) == 0
        assert shred_expired(session, config, now) == 0
    with runtime.sessions() as session:
        notices = session.scalars(
            select(Notification).where(Notification.kind == NotificationKind.RETENTION_WARNING)
        ).all()
        assert [(n.tip_id, n.unit_id is not None) for n in notices] == [(tip_id, True)]
        assert session.get_one(Tip, tip_id).retention_warned_at is not None
    # Outside the window (10 days before the lead time): no warning.
    with runtime.sessions() as session, session.begin():
        tip = session.get_one(Tip, tip_id)
        tip.retention_warned_at = None
        tip.closed_at = now - timedelta(days=6)
        assert warn_expiring(session, config, now) == 0
    expand(runtime)


def audit_count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return len(session.scalars(select(AuditEvent.id)).all())


# --- inbound events: the record that a msg_id was seen ---------------------------------------


def event_rows(runtime: Runtime) -> dict[str, InboundEvent]:
    with runtime.sessions() as session:
        return {row.dedup_key: row for row in session.scalars(select(InboundEvent))}


def age_event(runtime: Runtime, dedup_key: str, by: timedelta) -> None:
    """Move an event's times into the past, as if it had been received ``by`` ago."""
    with runtime.sessions() as session, session.begin():
        row = session.scalars(select(InboundEvent).where(InboundEvent.dedup_key == dedup_key)).one()
        row.received_at -= by
        if row.processed_at is not None:
            row.processed_at -= by


PURGE_EVENTS = ("old", "recent", "waiting")


def test_processed_events_keep_only_their_dedup_key_then_go(
    client: FlaskClient, runtime: Runtime
) -> None:
    """Zalo redelivers for about an hour (30 s, 5 min, 15 min, 30 min, 1 h): after that a
    processed event keeps its dedup key (a late redelivery is still a duplicate) and nothing
    that dates it to the second or names its tip; after a week, when no redelivery can come,
    the row goes. An event not yet made a tip is never touched, however old."""
    config = runtime.config
    old = event(text=f"{TEXT} cũ", msg_id="purge-old")
    recent = event(text=f"{TEXT} mới", msg_id="purge-recent")
    send(client, old)
    send(client, recent)
    waiting = event(text=f"{TEXT} chờ", msg_id="purge-waiting")  # stored, never expanded
    assert client.post("/zalo/webhook", data=waiting, headers=signed_headers(waiting)).json
    keys = {name: dedup_key(config, COMMUNE_OA, f"purge-{name}") for name in PURGE_EVENTS}
    with runtime.sessions() as session:
        tips = session.scalars(select(Tip.public_id)).all()
    before = event_rows(runtime)
    assert before[keys["old"]].tip_public_id is not None
    age_event(runtime, keys["old"], timedelta(hours=3))
    age_event(runtime, keys["waiting"], timedelta(days=30))
    waiting_before = event_rows(runtime)[keys["waiting"]]

    now = utcnow()
    retention_pass(runtime.sessions, config, now)
    rows = event_rows(runtime)
    stripped = rows[keys["old"]]
    assert stripped.received_at is None and stripped.tip_public_id is None
    assert stripped.sealed_event is None
    assert before[keys["old"]].lane != 0 and stripped.lane == 0  # nor which OA's lane it was in
    # Only the day it was processed stays (for the week's count), not the time of day.
    assert stripped.processed_at is not None
    assert stripped.processed_at.time() == time(0, 0)
    assert timedelta(hours=3) <= now - stripped.processed_at < timedelta(days=1, hours=3)
    # Within the horizon, nothing changes; the waiting event is untouched.
    kept = rows[keys["recent"]]
    assert (kept.received_at, kept.processed_at, kept.tip_public_id) == (
        before[keys["recent"]].received_at,
        before[keys["recent"]].processed_at,
        before[keys["recent"]].tip_public_id,
    )
    assert_untouched(rows[keys["waiting"]], waiting_before)

    # A late redelivery of the stripped event is still answered as a duplicate.
    again = client.post("/zalo/webhook", data=old, headers=signed_headers(old))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert set(event_rows(runtime)) == set(keys.values())

    # A week on, no redelivery can come: the processed rows go, the waiting one stays.
    retention_pass(runtime.sessions, config, now + timedelta(days=8))
    rows = event_rows(runtime)
    assert set(rows) == {keys["waiting"]}
    assert_untouched(rows[keys["waiting"]], waiting_before)
    with runtime.sessions() as session:  # the tips themselves are not the events' to delete
        assert session.scalars(select(Tip.public_id)).all() == tips


def assert_untouched(row: InboundEvent, before: InboundEvent) -> None:
    assert row.processed_at is None and row.tip_public_id is None
    assert row.received_at == before.received_at and row.received_at is not None
    assert row.sealed_event == before.sealed_event and row.sealed_event is not None


def test_the_purge_migration_goes_down_with_erased_receive_times(databases: Databases) -> None:
    """0017_inbound_purge made ``received_at`` nullable; going down, an erased receive time
    becomes the processed day (the column is NOT NULL again), and up again."""
    url = databases.create()
    upgrade(url)
    engine = create_engine(url)
    day = datetime(2026, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(InboundEvent.__table__).values(sealed_event=bindparam("sealed")),
            [
                {"dedup_key": "stripped", "received_at": None, "processed_at": day, "sealed": None},
                {"dedup_key": "waiting", "received_at": day, "processed_at": None, "sealed": b"x"},
            ],
        )
    downgrade(url, "0016_transit_epochs")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT dedup_key, received_at IS NULL, processed_at IS NULL FROM inbound_events")
        ).all()
        assert sorted(tuple(row) for row in rows) == [
            ("stripped", False, False),
            ("waiting", False, True),
        ]
        column = next(
            c for c in inspect(conn).get_columns("inbound_events") if c["name"] == "received_at"
        )
        assert column["nullable"] is False
    upgrade(url)
    with engine.connect() as conn:
        column = next(
            c for c in inspect(conn).get_columns("inbound_events") if c["name"] == "received_at"
        )
        assert column["nullable"] is True
        assert len(conn.execute(select(InboundEvent.id)).all()) == 2
    engine.dispose()
    databases.drop(url)
