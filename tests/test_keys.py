"""The keys recipes and the key chain: bindings, wraps, grants and unit key rotation."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from keys import (
    FAST_TEST_COST,
    EnvelopeError,
    WrongSecret,
    generate_keypair,
    grant,
    hash_password,
    open_grant,
    open_sealed,
    seal,
    unwrap_with_secret,
    verify_password,
    wrap_with_secret,
)
from keys.envelope import envelope_key_version
from keys.password import normalise_recovery_code
from tests.conftest import OFFICER_PASSWORD
from tipline.keychain import (
    NoKeyChain,
    enrol_officer,
    open_tip_key,
    unit_keys_of,
    unlock_officer_key,
)
from tipline.models import Officer, Tip, Unit
from tipline.runtime import Runtime


def test_envelope_binds_purpose_row_and_key() -> None:
    key = generate_keypair()
    sealed = seal(key.public_key, b"tin bao", purpose="message", binding="message:a", key_version=3)
    assert envelope_key_version(sealed) == 3
    assert open_sealed(key, sealed, purpose="message", binding="message:a") == b"tin bao"
    for purpose, binding, other in [
        ("message", "message:b", key),
        ("note", "message:a", key),
        ("message", "message:a", generate_keypair()),
    ]:
        with pytest.raises(EnvelopeError):
            open_sealed(other, sealed, purpose=purpose, binding=binding)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(EnvelopeError):
        open_sealed(key, bytes(tampered), purpose="message", binding="message:a")
    with pytest.raises(EnvelopeError):
        open_sealed(key, b"TE\x02" + sealed[3:], purpose="message", binding="message:a")


def test_grant_opens_only_for_its_holder_and_binding() -> None:
    subject, holder = generate_keypair(), generate_keypair()
    sealed = grant(subject, holder.public_key, binding="grant:tip:1>unit_key:2")
    opened = open_grant(sealed, holder, binding="grant:tip:1>unit_key:2")
    assert opened.public_key == subject.public_key
    with pytest.raises(EnvelopeError):
        open_grant(sealed, holder, binding="grant:tip:2>unit_key:2")
    assert "PrivateKey" in repr(opened) and str(opened.to_bytes()) not in repr(opened)


def test_password_wrap_and_hash() -> None:
    key = generate_keypair()
    wrapped = wrap_with_secret(
        key, "mật khẩu dài", cost=FAST_TEST_COST, binding="officer:x:password"
    )
    assert (
        unwrap_with_secret(wrapped, "mật khẩu dài", binding="officer:x:password").public_key
        == key.public_key
    )
    with pytest.raises(WrongSecret):
        unwrap_with_secret(wrapped, "sai", binding="officer:x:password")
    with pytest.raises(WrongSecret):
        unwrap_with_secret(wrapped, "mật khẩu dài", binding="officer:y:password")
    stored = hash_password("mật khẩu dài", cost=FAST_TEST_COST)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "mật khẩu dài") and not verify_password(stored, "sai")


def test_recovery_code_unlocks_the_officer_key(runtime: Runtime) -> None:
    with runtime.sessions() as session, session.begin():
        enrolment = enrol_officer(
            session,
            username="a",
            display_name="A",
            role="officer",
            unit=None,
            password=OFFICER_PASSWORD,
            cost=FAST_TEST_COST,
        )
        officer = enrolment.officer
        code = enrolment.recovery_code
        assert len(code) == 29 and code.count("-") == 4
        typed = code.lower().replace("-", " ")
        via_code = unwrap_with_secret(
            officer.key_wrapped_by_recovery,
            normalise_recovery_code(typed),
            binding=officer.key_binding + ":recovery",
        )
        assert via_code.public_key == unlock_officer_key(officer, OFFICER_PASSWORD).public_key
        with pytest.raises(WrongSecret):
            unlock_officer_key(officer, code)


@pytest.mark.usefixtures("units")
def test_auditors_and_admins_hold_no_unit_key(runtime: Runtime) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        auditor = add_officer(
            session,
            username="thanhtra2",
            display_name="T",
            role="auditor",
            unit_code="v2025:96",
            password=OFFICER_PASSWORD,
            cost=FAST_TEST_COST,
        ).officer
        key = unlock_officer_key(auditor, OFFICER_PASSWORD)
        assert unit_keys_of(session, auditor, key) == {}


@pytest.mark.usefixtures("units")
def test_rotation_keeps_old_tips_readable_and_reseal_moves_them(runtime: Runtime) -> None:
    from tipline.intake.expansion import accept_message
    from tipline.jobs.dispatch import dispatch_tip
    from tipline.units import rotate_key
    from tipline.zalo.events import InboundMessage, Sender

    msg = InboundMessage(
        "user_send_text", "text", "3886132808788132134", Sender(user_id="42"), "m1", "cũ"
    )
    public_id = accept_message(runtime, msg).tip_public_id
    dispatch_tip(public_id)

    def canbo_opens() -> None:
        with runtime.sessions() as session:
            officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
            keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
            open_tip_key(session, session.scalars(select(Tip)).one(), keys)

    with runtime.sessions() as session, session.begin():
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert unit.current_key is not None
        before = unit.current_key.version
        new_key, moved = rotate_key(session, "v2025:32134")
        assert new_key.version == before + 1 and moved == 0
    canbo_opens()  # still readable through the retired version
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        opener = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
    with runtime.sessions() as session, session.begin():
        newest, moved = rotate_key(session, "v2025:32134", opener)
        assert newest.version == before + 2 and moved == 1
    with runtime.sessions() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert unit.current_key is not None and unit.current_key.version == before + 2
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        tip = session.scalars(select(Tip).where(Tip.public_id == public_id)).one()
        only_newest = {unit.current_key.id: keys[unit.current_key.id]}
        body = tip.messages[0]
        tip_key = open_tip_key(session, tip, only_newest)
        assert (
            json.loads(
                open_sealed(tip_key, body.sealed_body, purpose="message", binding=body.binding)
            )["text"]
            == "cũ"
        )
        commander = session.scalars(select(Officer).where(Officer.username == "chihuy")).one()
        chain = unit_keys_of(session, commander, unlock_officer_key(commander, OFFICER_PASSWORD))
        assert open_tip_key(session, tip, chain).public_key == tip_key.public_key
        other = session.scalars(select(Officer).where(Officer.username == "canbo2")).one()
        with pytest.raises(NoKeyChain):
            open_tip_key(
                session,
                tip,
                unit_keys_of(session, other, unlock_officer_key(other, OFFICER_PASSWORD)),
            )
