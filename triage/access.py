"""Who may list and open which tips: the unit tree for listing, the key chain for content."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden, NotFound

from keys import PrivateKey
from tipline.keychain import NoKeyChain, open_tip_key
from tipline.models import Tip, Unit
from triage.users import StaffUser, unit_keys


def visible_unit_ids(db: Session, user: StaffUser) -> list[int]:
    """An officer's unit; a commander's unit and every unit below it; nobody else's."""
    if not user.holds_keys or user.unit_id is None:
        return []
    if not user.is_commander:
        return [user.unit_id]
    seen = [user.unit_id]
    frontier = [user.unit_id]
    while frontier:
        children = list(db.scalars(select(Unit.id).where(Unit.parent_id.in_(frontier))))
        seen += children
        frontier = children
    return seen


def tip_for(db: Session, user: StaffUser, public_id: str) -> Tip:
    """The tip, if it is in the officer's units; 403 otherwise (404 for an unknown id)."""
    if not user.holds_keys:
        raise Forbidden()
    tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one_or_none()
    if tip is None:
        raise NotFound()
    if tip.unit_id not in visible_unit_ids(db, user):
        raise Forbidden()
    return tip


def open_tip(db: Session, tip: Tip) -> PrivateKey:
    """The tip's private key through the officer's key chain; 403 when no chain leads there."""
    try:
        return open_tip_key(db, tip, unit_keys(db))
    except NoKeyChain as exc:
        raise Forbidden() from exc
