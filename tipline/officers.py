"""Enrolling staff accounts and giving key-holding roles their unit's key."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import KdfCost, PrivateKey
from tipline import audit
from tipline.keychain import (
    create_unit_key,
    enrol_officer,
    grant_unit_key_to_officer,
    members_holding_keys,
)
from tipline.models import KEY_HOLDING_ROLES, Officer, Role, UnitKey, utcnow
from tipline.units import UnitError, find_unit, record_key_version

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 12


@dataclass(frozen=True)
class NewAccount:
    officer: Officer
    recovery_code: str
    totp_secret: str
    # True when the unit already has key holders and none was at hand to grant the key: a
    # holder's next login completes the grant (until then the account opens no tip).
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
    actor: Officer | None = None,
    totp_confirmed: bool = False,
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
    audit.record(
        session,
        action=audit.actions.ACCOUNT_CREATE,
        actor=actor,
        object_id=officer.public_id,
        unit=unit,
        detail={"username": username, "role": role},
    )
    pending = False
    granted: UnitKey | None = None
    if holds_keys and unit is not None:
        current = unit.current_key
        if current is None or not members_holding_keys(session, unit):
            # The unit's first key holder: a fresh key version, sealed to them and the parent.
            # Tips sealed to an earlier version stay readable by the commanders above.
            current, private = create_unit_key(session, unit)
            record_key_version(session, audit.actions.KEY_CREATE, unit, current, actor)
            grant_unit_key_to_officer(session, current, private, officer)
            granted = current
        elif grantor_keys is not None and current.id in grantor_keys:
            grant_unit_key_to_officer(session, current, grantor_keys[current.id], officer)
            granted = current
        else:
            pending = True
    if granted is not None and unit is not None:
        audit.record(
            session,
            action=audit.actions.GRANT,
            actor=actor,
            object_id=officer.public_id,
            unit=unit,
            detail={"key": "unit", "version": str(granted.version)},
        )
    return NewAccount(officer, enrolment.recovery_code, totp_secret, pending)
