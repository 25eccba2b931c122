"""An account's life after enrolment: disable, reset a password or a lost authenticator, move
to another unit, change role. Admin work: no key is used here, and wherever an account ends up
able to read tips, a key holder must approve first (tipline.grants).

Every change ends the account's sessions (``session_epoch``) and is audited with the admin as
actor, in the change's own transaction. What each change does to keys:

- disable, or a role without keys: grants deleted, every unit key they opened rotated;
- move: the same for the old unit; the new unit's key waits for approval;
- password reset: a new key pair (the admin cannot open the old one), must be changed at the
  next login, a new authenticator enrolled; the key waits for approval;
- authenticator reset: a new TOTP secret sealed to the account's public key; grants deleted
  and waiting for approval, since whoever enrols the new authenticator gets the keys.
"""

from __future__ import annotations

import pyotp
from sqlalchemy.orm import Session

from keys import KdfCost
from tipline import audit
from tipline.grants import end_sessions, give_unit_key, revoke_and_rotate, withdraw_requests
from tipline.keychain import replace_officer_key, reseal_totp_secret
from tipline.models import KEY_HOLDING_ROLES, GrantReason, Officer, Role, Unit


class AccountError(ValueError):
    """A change that cannot be made; nothing was written."""


def _changed(
    session: Session,
    officer: Officer,
    actor: Officer | None,
    client_address: str | None,
    detail: dict[str, str],
) -> None:
    audit.record(
        session,
        action=audit.actions.ACCOUNT_CHANGE,
        actor=actor,
        object_id=officer.public_id,
        unit=officer.unit,
        client_address=client_address if actor is not None else None,
        detail=detail,
    )


def _not_self(officer: Officer, actor: Officer | None) -> None:
    if actor is not None and officer.id == actor.id:
        raise AccountError("own account")


def disable(
    session: Session, officer: Officer, *, actor: Officer | None, client_address: str | None = None
) -> list[Unit]:
    """Disable the account: sessions ended, grants deleted, keys it opened rotated."""
    _not_self(officer, actor)
    officer.active = False
    officer.on_duty = False
    _changed(session, officer, actor, client_address, {"active": "False"})
    end_sessions(session, officer, actor=actor, reason="disabled")
    return revoke_and_rotate(
        session, officer, actor=actor, reason="disabled", client_address=client_address
    )


def enable(
    session: Session, officer: Officer, *, actor: Officer | None, client_address: str | None = None
) -> bool:
    """Re-enable the account; its key (revoked at disabling) waits for approval again.
    True when a request is pending."""
    officer.active = True
    _changed(session, officer, actor, client_address, {"active": "True"})
    if officer.role in KEY_HOLDING_ROLES and officer.unit is not None:
        return (
            give_unit_key(session, officer, officer.unit, GrantReason.RE_ENABLED, actor=actor)
            is not None
        )
    return False


def reset_password(
    session: Session,
    officer: Officer,
    *,
    password: str,
    cost: KdfCost,
    actor: Officer | None,
    client_address: str | None = None,
) -> tuple[str, str]:
    """A new key pair under ``password`` (changed at the next login) and a new authenticator;
    the key waits for approval. Returns the new recovery code and TOTP secret."""
    _not_self(officer, actor)
    totp_secret = pyotp.random_base32()
    revoke_and_rotate(session, officer, actor=actor, reason="password_reset", rotate=False)
    recovery = replace_officer_key(officer, password=password, cost=cost, totp_secret=totp_secret)
    officer.must_change_password = True
    officer.failed_logins = 0
    officer.locked_until = None
    _changed(session, officer, actor, client_address, {"change": "password_reset"})
    end_sessions(session, officer, actor=actor, reason="password_reset")
    if officer.active and officer.role in KEY_HOLDING_ROLES and officer.unit is not None:
        give_unit_key(session, officer, officer.unit, GrantReason.PASSWORD_RESET, actor=actor)
    return recovery, totp_secret


def reset_authenticator(
    session: Session, officer: Officer, *, actor: Officer | None, client_address: str | None = None
) -> str:
    """A lost phone: a new TOTP secret to enrol at the next login; the account's grants go
    and wait for a key holder's approval. Returns the new secret (for the admin to know it
    was made; the officer enrols it from the QR page after their password)."""
    _not_self(officer, actor)
    totp_secret = pyotp.random_base32()
    revoke_and_rotate(session, officer, actor=actor, reason="authenticator_reset", rotate=False)
    reseal_totp_secret(officer, totp_secret)
    _changed(session, officer, actor, client_address, {"change": "authenticator_reset"})
    end_sessions(session, officer, actor=actor, reason="authenticator_reset")
    if officer.active and officer.role in KEY_HOLDING_ROLES and officer.unit is not None:
        give_unit_key(session, officer, officer.unit, GrantReason.AUTHENTICATOR_RESET, actor=actor)
    return totp_secret


def move(
    session: Session,
    officer: Officer,
    unit: Unit,
    *,
    actor: Officer | None,
    client_address: str | None = None,
) -> None:
    """To another unit: the old unit's grants revoked (its keys rotated), the new unit's key
    waiting for a key holder of it."""
    _not_self(officer, actor)
    if officer.unit_id == unit.id:
        raise AccountError("same unit")
    old = officer.unit
    revoke_and_rotate(session, officer, actor=actor, reason="unit_move")
    officer.unit = unit
    officer.on_duty = False
    _changed(
        session,
        officer,
        actor,
        client_address,
        {"from_unit": old.code if old else "", "to_unit": unit.code},
    )
    end_sessions(session, officer, actor=actor, reason="unit_move")
    if officer.active and officer.role in KEY_HOLDING_ROLES:
        give_unit_key(session, officer, unit, GrantReason.UNIT_MOVE, actor=actor)


def change_role(
    session: Session,
    officer: Officer,
    role: str,
    *,
    actor: Officer | None,
    client_address: str | None = None,
) -> None:
    """Officer ↔ commander keeps the unit key (the key opens the same units either way; the
    role changes what the UI lists). To auditor or admin: grants revoked, keys rotated. From
    auditor or admin to a key-holding role: the key waits for approval."""
    _not_self(officer, actor)
    if role not in set(Role):
        raise AccountError("role")
    if role == officer.role:
        raise AccountError("same role")
    had, gets = officer.role in KEY_HOLDING_ROLES, role in KEY_HOLDING_ROLES
    if gets and officer.unit is None:
        raise AccountError("no unit")
    old = officer.role
    officer.role = role
    if had and not gets:
        officer.on_duty = False
        revoke_and_rotate(session, officer, actor=actor, reason="role_change")
    _changed(session, officer, actor, client_address, {"from_role": old, "to_role": role})
    end_sessions(session, officer, actor=actor, reason="role_change")
    if gets and not had and officer.active and officer.unit is not None:
        give_unit_key(session, officer, officer.unit, GrantReason.ROLE_CHANGE, actor=actor)
    if not gets:
        withdraw_requests(session, officer)
