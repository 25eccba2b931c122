"""Retention: closed tips past their period are crypto-shredded; the unit is warned first."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import expand, run_jobs
from tests.test_dispatch import read_as, send
from tests.triage_helpers import csrf_from, login
from tests.zalo_events import event
from tipline.audit import actions
from tipline.config import Config
from tipline.jobs.relay import drain
from tipline.keychain import NoKeyChain
from tipline.models import (
    AuditEvent,
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
