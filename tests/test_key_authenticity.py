"""Stored public keys are authenticated before anything is sealed to them (issue 14,
"Database write = reading future follow-ups").

The attacker writes the database with plain SQL (tests.databases.raw: the SQLite file, or
PostgreSQL's superuser) but holds no configuration secret. They put a key pair of their own in
place of a tip's, a unit's, an officer's or the current transit epoch's public key. Before
certificates (tipline.models.key_trust), every later note and follow-up of the tip, every new
tip of the unit, every grant to the officer, every event from intake was sealed to the
attacker's key. Now sealing refuses, nothing opens with the attacker's key, an error is logged
and a ``key_rejected`` audit event names the key.
"""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import EnvelopeError, PrivateKey, generate_keypair, open_sealed
from tests.conftest import expand, run_jobs
from tests.databases import raw
from tests.test_dispatch import read_as, send
from tests.triage_helpers import csrf_from, login
from tests.zalo_events import event, signed_headers
from tipline.audit import actions
from tipline.jobs.dispatch import dispatch_tip
from tipline.keychain import create_unit_key
from tipline.models import (
    AuditEvent,
    Direction,
    HoldReason,
    InboundEvent,
    KeyGrant,
    Message,
    Officer,
    Tip,
    Unit,
)
from tipline.models.key_trust import UncertifiedKey
from tipline.models.sealed_fields import KEY_GRANT
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")
ATTACKER = generate_keypair()


def swap(runtime: Runtime, table: str, row_id: int, *, drop_certificate: bool = False) -> None:
    """The attacker's public key in place of the row's (and maybe its certificate gone)."""
    runtime.engine.dispose()
    extra = ", key_certificate = NULL" if drop_certificate else ""
    with raw(runtime.config.database_url, bypass_triggers=False) as db:
        db.execute(
            f"UPDATE {table} SET public_key = ?{extra} WHERE id = ?",  # noqa: S608 - a test's table
            (ATTACKER.public_key.to_bytes(), row_id),
        )
    runtime.transit.forget_cached()


def rejected(runtime: Runtime, prefix: str) -> list[AuditEvent]:
    """The ``key_rejected`` events about keys named ``prefix…`` (recorded beside the refused
    action, in a thread of their own)."""
    for _ in range(100):
        with runtime.sessions() as session:
            found = [
                e
                for e in session.scalars(
                    select(AuditEvent).where(AuditEvent.action == actions.KEY_REJECTED)
                )
                if e.detail.get("key", "").startswith(prefix)
            ]
        if found:
            return found
        time.sleep(0.05)
    return []


def nothing_opens_with(runtime: Runtime, key: PrivateKey) -> None:
    """No grant, message or stored event opens with ``key``."""
    with runtime.sessions() as session:
        for grant in session.scalars(select(KeyGrant)):
            with pytest.raises(EnvelopeError):
                KEY_GRANT.open(grant.sealed, key, *grant.link)
        for message in session.scalars(select(Message)):
            with pytest.raises(EnvelopeError):
                open_sealed(key, message.sealed_body, purpose="message", binding=message.binding)
        for stored in session.scalars(select(InboundEvent)):
            for sealed, purpose in (
                (stored.sealed_event, "inbound_event"),
                (stored.sealed_fallback, "inbound_event_fallback"),
            ):
                if sealed is not None:
                    with pytest.raises(EnvelopeError):
                        open_sealed(
                            key, sealed, purpose=purpose, binding=f"inbound:{stored.dedup_key}"
                        )


def dispatched_tip(client: FlaskClient, runtime: Runtime, text: str, user: str) -> Tip:
    send(client, event(text=text, msg_id=f"ka-{user}", user=user))
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip).order_by(Tip.id.desc()).limit(1)).one()
        session.expunge(tip)
    assert dispatch_tip(tip.public_id) == "dispatched"
    return tip


def test_a_swapped_tip_key_gets_no_note_and_no_follow_up(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip = dispatched_tip(client, runtime, "Buôn bán ma túy ở hẻm 12", "8491")
    swap(runtime, "tips", tip.id)

    # The officer's note: refused with a clear page, nothing stored.
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    page = client.get(f"/triage/tips/{tip.public_id}").get_data(as_text=True)
    response = client.post(
        f"/triage/tips/{tip.public_id}/note",
        data={"csrf_token": csrf_from(page), "text": "Đã xác minh địa chỉ"},
    )
    assert response.status_code == 409
    assert "không phải khóa được tạo ban đầu" in response.get_data(as_text=True)
    with runtime.sessions() as session:
        notes = session.scalars(select(Message).where(Message.direction == Direction.NOTE))
        assert list(notes) == []
    assert rejected(runtime, f"key/tip:{tip.public_id}")

    # The informant's follow-up: not joined to the swapped tip, but kept, as a new tip that
    # its unit reads.
    raw_event = event(text="Thêm: xe máy biển 69B1", msg_id="ka-follow", user="8491")
    assert (
        client.post("/zalo/webhook", data=raw_event, headers=signed_headers(raw_event)).status_code
        == 200
    )
    expand(runtime)
    with runtime.sessions() as session:
        own = session.scalars(select(Message).where(Message.tip_id == tip.id)).all()
        assert len(own) == 2  # the tip's first message and its acknowledgement, no more
        newer = session.scalars(select(Tip).where(Tip.id != tip.id)).one()
        newer_id, newer_public = newer.id, newer.public_id
    assert dispatch_tip(newer_public) == "dispatched"
    assert read_as(runtime, "canbo", newer_id)[0]["text"] == "Thêm: xe máy biển 69B1"
    nothing_opens_with(runtime, ATTACKER)


def test_a_swapped_unit_key_gets_no_new_tip(client: FlaskClient, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        current = unit.current_key
        assert current is not None
        key_id = current.id
    swap(runtime, "unit_keys", key_id, drop_certificate=True)

    raw_event = event(text="Có người trộm xe ở chợ", msg_id="ka-unit")
    assert (
        client.post("/zalo/webhook", data=raw_event, headers=signed_headers(raw_event)).status_code
        == 200
    )  # the tip is accepted all the same: sealed to the transit epoch
    expand(runtime)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        public_id = tip.public_id
    assert dispatch_tip(public_id) == "held"
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatch_error == HoldReason.UNIT_KEY_NOT_CERTIFIED
        assert tip.dispatched_at is None
    assert rejected(runtime, "key/unit_key:")
    nothing_opens_with(runtime, ATTACKER)

    # The admin makes a new key version (the unit's key holders' grants follow at login):
    # the held tip then dispatches to it.
    with runtime.sessions() as session, session.begin():
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        new_key, _ = create_unit_key(session, unit)
        new_id = new_key.id
    assert dispatch_tip(public_id) == "dispatched"
    with runtime.sessions() as session:
        holders = session.scalars(
            select(KeyGrant.holder_id).where(KeyGrant.subject_kind == "tip")
        ).all()
        assert holders == [new_id]
    nothing_opens_with(runtime, ATTACKER)


def test_a_swapped_officer_key_gets_no_unit_key(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo2")).one()
        officer_id, public_id = officer.id, officer.public_id
    swap(runtime, "officers", officer_id)
    with runtime.sessions() as session, pytest.raises(UncertifiedKey):
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32128")).one()
        create_unit_key(session, unit)  # a rotation would grant the new key to its members
    assert rejected(runtime, f"key/officer:{public_id}")
    nothing_opens_with(runtime, ATTACKER)


def test_a_swapped_transit_key_gets_no_event(client: FlaskClient, runtime: Runtime) -> None:
    epoch = runtime.transit.public().version
    swap(runtime, "transit_epochs", epoch)
    raw_event = event(text="Đánh bạc ở quán nước", msg_id="ka-transit")
    response = client.post("/zalo/webhook", data=raw_event, headers=signed_headers(raw_event))
    assert response.status_code == 503  # Zalo retries; nothing is sealed to the attacker
    assert rejected(runtime, f"key/transit:{epoch}")
    with runtime.sessions() as session:
        assert session.scalars(select(InboundEvent)).all() == []
    # The workers move to a new, certified epoch; Zalo's retry is then stored and opens.
    runtime.transit.rotate()
    assert runtime.transit.public().version != epoch
    assert (
        client.post("/zalo/webhook", data=raw_event, headers=signed_headers(raw_event)).status_code
        == 200
    )
    expand(runtime)
    run_jobs(runtime, ["dispatch"])
    with runtime.sessions() as session:
        tip_id = session.scalars(select(Tip.id)).one()
    assert read_as(runtime, "canbo", tip_id)[0]["text"] == "Đánh bạc ở quán nước"
    nothing_opens_with(runtime, ATTACKER)

