"""Managing units and their OAs (admin work: no tip content, no unit private keys kept)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import PrivateKey
from tipline import audit
from tipline.keychain import create_unit_key, reseal_tip_grants
from tipline.models import Officer, OfficialAccount, Unit, UnitKey, UnitLevel


class UnitError(ValueError):
    """A unit command that cannot be carried out; the message says why."""


def find_unit(session: Session, code: str) -> Unit:
    unit = session.scalars(select(Unit).where(Unit.code == code)).one_or_none()
    if unit is None:
        raise UnitError(f"no unit with code {code}")
    return unit


def add_unit(
    session: Session,
    *,
    code: str,
    name: str,
    level: str,
    parent_code: str | None = None,
    actor: Officer | None = None,
) -> Unit:
    """Create a unit; its first key version is granted to the parent unit's key.

    A unit with no keyed parent (a province, say) gets its key when its first officer or
    commander is enrolled, sealed to them: a key sealed to no one would be lost.
    """
    if level not in set(UnitLevel):
        raise UnitError(f"level must be one of {', '.join(UnitLevel)}")
    if not code or any(ch.isspace() for ch in code):
        raise UnitError("a unit code has no spaces")
    if session.scalar(select(Unit.id).where(Unit.code == code)) is not None:
        raise UnitError(f"unit {code} already exists")
    parent = find_unit(session, parent_code) if parent_code else None
    unit = Unit(code=code, name=name.strip(), level=level, parent=parent)
    session.add(unit)
    session.flush()
    detail = {"code": code, "level": level}
    if parent is not None:
        detail["parent"] = parent.code
    audit.record(
        session,
        action=audit.actions.UNIT_CREATE,
        actor=actor,
        object_id=unit.public_id,
        unit=unit,
        detail=detail,
    )
    if parent is not None and parent.current_key is not None:
        unit_key, _private = create_unit_key(session, unit)
        record_key_version(session, audit.actions.KEY_CREATE, unit, unit_key, actor)
    return unit


def record_key_version(
    session: Session, action: str, unit: Unit, unit_key: UnitKey, actor: Officer | None
) -> None:
    """KEY_CREATE / KEY_ROTATE: which unit got which key version (public facts only)."""
    audit.record(
        session,
        action=action,
        actor=actor,
        object_id=unit.public_id,
        unit=unit,
        detail={"version": str(unit_key.version)},
    )


class OaMoveRefused(UnitError):
    """The OA is attached to another unit: moving it needs to be asked for (``move=True``)."""

    def __init__(self, oa_id: str, current: Unit, target: Unit) -> None:
        super().__init__(
            f"OA {oa_id} is attached to unit {current.code}; moving it to {target.code} sends "
            "the tips its informants write, and its replies, to that unit: say --move to do so"
        )
        self.oa_id = oa_id
        self.current_code = current.code
        self.current_name = current.name


def valid_oa_id(oa_id: str) -> bool:
    return oa_id.isdigit() and len(oa_id) <= 32


def set_oa(
    session: Session,
    code: str,
    oa_id: str,
    *,
    actor: Officer | None = None,
    move: bool = False,
    client_address: str | None = None,
) -> OfficialAccount:
    """Attach an OA to a unit. An OA belongs to one unit: one attached elsewhere is moved only
    with ``move`` (:class:`OaMoveRefused` otherwise), keeping its tokens."""
    if not valid_oa_id(oa_id):
        raise UnitError("an OA id is a string of digits")
    unit = find_unit(session, code)
    account = session.scalars(
        select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
    ).one_or_none()
    detail = {"oa": oa_id}
    if account is None:
        account = OfficialAccount(oa_id=oa_id, unit=unit)
        session.add(account)
    else:
        if account.unit is not unit:
            if not move:
                raise OaMoveRefused(oa_id, account.unit, unit)
            detail["from_unit"] = account.unit.code
        account.unit = unit
    # The OA id is the unit's public Zalo account, never an informant's.
    audit.record(
        session,
        action=audit.actions.OA_ATTACH,
        actor=actor,
        object_id=oa_id,
        unit=unit,
        client_address=client_address,
        detail=detail,
    )
    return account


def detach_oa(
    session: Session, oa_id: str, *, actor: Officer | None = None, client_address: str | None = None
) -> Unit:
    """Remove an OA and its sealed tokens; the unit it was attached to.

    Tips its informants send afterwards are held until the OA is attached again (dispatch
    finds no unit), and no reply goes out through it. Zalo keeps the app's permission until an
    OA admin withdraws it in Zalo.
    """
    account = session.scalars(
        select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
    ).one_or_none()
    if account is None:
        raise UnitError(f"no OA {oa_id}")
    unit = account.unit
    session.delete(account)
    session.flush()
    audit.record(
        session,
        action=audit.actions.OA_DETACH,
        actor=actor,
        object_id=oa_id,
        unit=unit,
        client_address=client_address,
        detail={"oa": oa_id},
    )
    return unit


def rotate_key(
    session: Session,
    code: str,
    opener: dict[int, PrivateKey] | None = None,
    *,
    actor: Officer | None = None,
) -> tuple[UnitKey, int]:
    """A new key version for new tips, granted to the members and the parent unit.

    Old versions stay readable through their grants. With ``opener`` (the unit keys an
    officer's login unlocks), the old versions' tip grants are re-sealed to the new version.
    Returns the new version and how many tip grants were re-sealed.
    """
    unit = find_unit(session, code)
    if not unit.keys:
        raise UnitError(f"unit {code} has no key yet: enrol its first officer")
    old_versions = list(unit.keys)
    unit_key, _private = create_unit_key(session, unit)
    moved = 0
    for old in old_versions:
        if opener is not None and old.id in opener:
            moved += reseal_tip_grants(session, old, opener[old.id], unit_key)
    audit.record(
        session,
        action=audit.actions.KEY_ROTATE,
        actor=actor,
        object_id=unit.public_id,
        unit=unit,
        detail={"version": str(unit_key.version), "resealed": str(moved)},
    )
    return unit_key, moved


def list_units(session: Session) -> list[dict[str, Any]]:
    units = session.scalars(select(Unit).order_by(Unit.code)).all()
    by_id = {unit.id: unit for unit in units}
    return [
        {
            "code": unit.code,
            "name": unit.name,
            "level": unit.level,
            "parent": by_id[unit.parent_id].code if unit.parent_id else None,
            "oa_ids": [account.oa_id for account in unit.official_accounts],
        }
        for unit in units
    ]
