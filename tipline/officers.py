"""Enrolling staff accounts and giving key-holding roles their unit's key."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import KdfCost, PrivateKey
from tipline import audit
from tipline.grants import give_unit_key
from tipline.keychain import enrol_officer, unit_keys_of, unlock_officer_key
from tipline.models import KEY_HOLDING_ROLES, GrantReason, Officer, Role, utcnow
from tipline.units import UnitError, find_unit

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 12


@dataclass(frozen=True)
class NewAccount:
    officer: Officer
    recovery_code: str
    totp_secret: str
    # True when the account waits for a key holder of the unit or above to approve its grant
    # (tipline.grants); until then it opens no tip.
    key_pending: bool


def add_officer(
    session: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    unit_code: str | None,
    password: str,
    cost: KdfCost,
    grantor_keys: dict[int, PrivateKey] | None = None,
    grantor: Officer | None = None,
    actor: Officer | None = None,
    totp_confirmed: bool = False,
    must_change_password: bool = False,
) -> NewAccount:
    """Create an account. ``totp_confirmed`` skips the QR enrolment at first login: only for
    accounts whose TOTP secret was handed over by a trusted channel (the demo's logins file)."""
    if not USERNAME.match(username):
        raise UnitError("username: 3–64 of a-z, 0-9, '.', '_', '-'")
    if role not in set(Role):
        raise UnitError(f"role must be one of {', '.join(Role)}")
    if len(password) < MIN_PASSWORD:
        raise UnitError(f"password: at least {MIN_PASSWORD} characters")
    if session.scalar(select(Officer.id).where(Officer.username == username)) is not None:
        raise UnitError(f"account {username} already exists")
    holds_keys = role in KEY_HOLDING_ROLES
    if holds_keys and not unit_code:
        raise UnitError("officers and commanders belong to a unit")
    unit = find_unit(session, unit_code) if unit_code else None
    totp_secret = pyotp.random_base32()
    enrolment = enrol_officer(
        session,
        username=username,
        display_name=display_name,
        role=role,
        unit=unit,
        password=password,
        cost=cost,
        totp_secret=totp_secret,
    )
    officer = enrolment.officer
    if totp_confirmed:
        officer.totp_confirmed_at = utcnow()
    officer.must_change_password = must_change_password
    audit.record(
        session,
        action=audit.actions.ACCOUNT_CREATE,
        actor=actor,
        object_id=officer.public_id,
        unit=unit,
        detail={"username": username, "role": role},
    )
    pending = False
    if holds_keys and unit is not None:
        request = give_unit_key(
            session,
            officer,
            unit,
            GrantReason.NEW_ACCOUNT,
            actor=actor,
            grantor=grantor,
            grantor_keys=grantor_keys,
        )
        pending = request is not None
    return NewAccount(officer, enrolment.recovery_code, totp_secret, pending)


def holder_keys(
    session: Session, username: str, password: str
) -> tuple[Officer, dict[int, PrivateKey]]:
    """A key holder and the unit keys their password unlocks: to approve grants on the spot
    (``--granted-by``, the demo's seeding). Raises ``keys.WrongSecret`` for a wrong password."""
    holder = session.scalars(select(Officer).where(Officer.username == username)).one()
    return holder, unit_keys_of(session, holder, unlock_officer_key(holder, password))
