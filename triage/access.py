"""Who may list and open which tips: the unit tree for listing, the key chain for content."""

from __future__ import annotations

from flask import g, request
from flask.wrappers import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden, NotFound

from keys import PrivateKey
from tipline.audit import actions, audited_session, record
from tipline.grants import pending_request
from tipline.keychain import NoKeyChain, open_tip_key
from tipline.models import Officer, Outcome, Tip, Unit
from triage.grants import waiting_notice
from triage.users import StaffUser, runtime, staff, unit_keys

DENIED_TIP = "denied_tip"  # g: (officer id, tip public id) of a refused access, to audit


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


def tip_for(db: Session, user: StaffUser, public_id: str, *, lock: bool = False) -> Tip:
    """The tip, if it is in the officer's units; 403 otherwise (404 for an unknown id).

    ``lock``: the tip's row locked to the end of the transaction (in an
    ``audit.audited_session``, whose other work does not lock the database: tipline.db)."""
    query = select(Tip).where(Tip.public_id == public_id)
    if lock:
        query = query.with_for_update(key_share=True)
    tip = db.scalars(query).one_or_none()
    if tip is None:
        raise NotFound()
    if not user.holds_keys or tip.unit_id not in visible_unit_ids(db, user):
        raise _denied(user, tip)
    return tip


def _denied(user: StaffUser, tip: Tip) -> Forbidden:
    """Refuse, and have :func:`audit_denied_access` record the attempt once the request's
    own transaction (rolled back by the refusal) is over."""
    setattr(g, DENIED_TIP, (user.officer_id, tip.public_id))
    return Forbidden()


def audit_denied_access(response: Response) -> Response:
    """After the request: a refused access to an existing tip is an audit event (outcome
    "denied"), in a transaction of its own. Probing other units' tips shows in the log."""
    denied = g.pop(DENIED_TIP, None)
    if denied is None:
        return response
    officer_id, tip_public_id = denied
    with audited_session(runtime().sessions) as db:
        record(
            db,
            action=actions.TIP_OPEN,
            actor=db.get_one(Officer, officer_id),
            object_id=tip_public_id,
            outcome=Outcome.DENIED,
            client_address=request.remote_addr,
            detail={"endpoint": request.endpoint or ""},
        )
    return response


def open_tip(db: Session, tip: Tip) -> PrivateKey:
    """The tip's private key through the officer's key chain; 403 when no chain leads there."""
    try:
        return open_tip_key(db, tip, unit_keys(db))
    except NoKeyChain as exc:
        user = staff()
        refused = _denied(user, tip)
        if pending_request(db, user.officer_id) is not None:
            # Not a bare 403: the account waits for a key holder's approval (tipline.grants).
            refused.description = waiting_notice()
        raise refused from exc


def other_tip(db: Session, user: StaffUser, receipt_code: str) -> Tip | None:
    """The tip of ``receipt_code`` if the officer may open it: in their units, a key chain of
    theirs leads to it, not deleted under retention. None otherwise, whatever the reason, so
    that the answer is no oracle for other units' codes (links and duplicates, triage.related
    and triage.tips)."""
    tip = db.scalars(select(Tip).where(Tip.receipt_code == receipt_code)).one_or_none()
    if tip is None or tip.shredded_at is not None:
        return None
    if not user.holds_keys or tip.unit_id not in visible_unit_ids(db, user):
        return None
    try:
        open_tip_key(db, tip, unit_keys(db))
    except NoKeyChain:
        return None
    return tip
