"""Unit keys reach an account only when a key holder of that unit or above approves.

Admins create, reset and move accounts but hold no key (DESIGN.md). Whoever creates an
account knows its first password, so a grant that completed by itself (formerly at the next
login of any key holder) let an admin read a province. Now every such account waits in a
:class:`GrantRequest` until a key holder whose chain opens the unit's current key approves it,
seeing who the account is, who asked and when, and what it would open. The approval is audited
as the approver's (``grant``, actor the approver; detail names the request and who asked).

Removing a key holder (disabled, moved, made an auditor or admin) deletes their grants and
rotates the key of every unit they could open (their unit and those below), so nothing
sealed from then on reaches a version they held (docs/threat-model.md, "Insiders").
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import PrivateKey
from tipline import audit
from tipline.keychain import (
    create_unit_key,
    grant_unit_versions,
    key_holders_reaching,
    revoke_officer_grants,
)
from tipline.models import (
    KEY_HOLDING_ROLES,
    GrantReason,
    GrantRequest,
    GrantState,
    Officer,
    Unit,
    utcnow,
)
from tipline.units import record_key_version


class GrantRefused(ValueError):
    """The approval cannot be made (not pending, not a key holder of the unit, one's own)."""


def request_grant(
    session: Session,
    officer: Officer,
    unit: Unit,
    reason: GrantReason,
    *,
    actor: Officer | None,
    client_address: str | None = None,
) -> GrantRequest:
    """The account waits for ``unit``'s key; an earlier pending request of it is withdrawn."""
    withdraw_requests(session, officer)
    request = GrantRequest(officer=officer, unit=unit, reason=reason, requested_by=actor)
    session.add(request)
    session.flush()
    audit.record(
        session,
        action=audit.actions.GRANT_REQUEST,
        actor=actor,
        object_id=officer.public_id,
        unit=unit,
        client_address=client_address if actor is not None else None,
        detail={"unit": unit.code, "reason": reason, "request": request.public_id},
    )
    return request


def withdraw_requests(session: Session, officer: Officer) -> None:
    for request in session.scalars(
        select(GrantRequest).where(
            GrantRequest.officer_id == officer.id, GrantRequest.state == GrantState.PENDING
        )
    ):
        request.state = GrantState.WITHDRAWN
        request.decided_at = utcnow()


def pending_request(session: Session, officer_id: int) -> GrantRequest | None:
    """The account's request still waiting, if any (what the officer is told they wait for)."""
    return session.scalars(
        select(GrantRequest)
        .where(GrantRequest.officer_id == officer_id, GrantRequest.state == GrantState.PENDING)
        .order_by(GrantRequest.id.desc())
        .limit(1)
    ).one_or_none()


def approvable(
    session: Session, approver: Officer, opened: dict[int, PrivateKey]
) -> list[GrantRequest]:
    """Pending requests ``approver`` may decide: units whose current key their chain opens,
    never their own account's."""
    rows = session.scalars(
        select(GrantRequest)
        .where(GrantRequest.state == GrantState.PENDING, GrantRequest.officer_id != approver.id)
        .order_by(GrantRequest.requested_at)
    )
    return [r for r in rows if _can_decide(r, approver, opened)]


def _can_decide(request: GrantRequest, approver: Officer, opened: dict[int, PrivateKey]) -> bool:
    current = request.unit.current_key
    return (
        approver.active
        and approver.role in KEY_HOLDING_ROLES
        and request.officer_id != approver.id
        and current is not None
        and current.id in opened
    )


def _decidable(
    session: Session, request: GrantRequest, approver: Officer, opened: dict[int, PrivateKey]
) -> None:
    if request.state != GrantState.PENDING:
        raise GrantRefused("not pending")
    if not _can_decide(request, approver, opened):
        raise GrantRefused("not a key holder of this unit")


def _decided(request: GrantRequest, state: GrantState, approver: Officer) -> None:
    request.state = state
    request.decided_by = approver
    request.decided_at = utcnow()


def approve(
    session: Session,
    request: GrantRequest,
    approver: Officer,
    opened: dict[int, PrivateKey],
    *,
    client_address: str | None = None,
) -> int:
    """Seal the unit's key versions ``opened`` holds to the account; audited as the
    approver's. Returns how many versions were granted."""
    _decidable(session, request, approver, opened)
    officer = request.officer
    if (
        not officer.active
        or officer.role not in KEY_HOLDING_ROLES
        or officer.unit_id != request.unit_id
    ):
        request.state = GrantState.WITHDRAWN  # the account changed since: nothing to grant
        request.decided_at = utcnow()
        raise GrantRefused("the account no longer belongs to this unit")
    granted = grant_unit_versions(session, request.unit, opened, officer)
    _decided(request, GrantState.APPROVED, approver)
    audit.record(
        session,
        action=audit.actions.GRANT,
        actor=approver,
        object_id=officer.public_id,
        unit=request.unit,
        client_address=client_address,
        detail={
            "key": "unit",
            "unit": request.unit.code,
            "versions": ",".join(str(k.version) for k in granted),
            # Who asked is the request's own event (``grant_request``, its actor): the grant
            # names only who granted.
            "request": request.public_id,
            "reason": request.reason,
        },
    )
    return len(granted)


def reject(
    session: Session,
    request: GrantRequest,
    approver: Officer,
    opened: dict[int, PrivateKey],
    *,
    client_address: str | None = None,
) -> None:
    _decidable(session, request, approver, opened)
    _decided(request, GrantState.REJECTED, approver)
    audit.record(
        session,
        action=audit.actions.GRANT_REJECT,
        actor=approver,
        object_id=request.officer.public_id,
        unit=request.unit,
        client_address=client_address,
        detail={"unit": request.unit.code, "request": request.public_id},
    )


def give_unit_key(
    session: Session,
    officer: Officer,
    unit: Unit,
    reason: GrantReason,
    *,
    actor: Officer | None,
    grantor: Officer | None = None,
    grantor_keys: dict[int, PrivateKey] | None = None,
    client_address: str | None = None,
) -> GrantRequest | None:
    """Start ``officer``'s way to ``unit``'s key: granted at once only by a key holder at hand
    (``grantor`` with ``grantor_keys``: the command line's ``--granted-by``), or, when nobody
    at all could approve (no key holder of the unit or above: a new province's first
    commander), a fresh key version sealed to the account and the unit above. Otherwise a
    pending request (returned)."""
    request = request_grant(session, officer, unit, reason, actor=actor, client_address=None)
    current = unit.current_key
    if grantor is not None and grantor_keys is not None and current is not None:
        if current.id in grantor_keys and grantor.id != officer.id:
            approve(session, request, grantor, grantor_keys, client_address=client_address)
            return None
    if current is None or not [
        h for h in key_holders_reaching(session, unit) if h.id != officer.id
    ]:
        # The first key holder of the unit's chain: nobody exists who could approve. A fresh
        # version, sealed to the account and the parent's key; the auditor's anomaly list
        # flags it as a grant to a new account.
        unit_key, private = create_unit_key(session, unit)
        record_key_version(session, audit.actions.KEY_CREATE, unit, unit_key, actor)
        grant_unit_versions(session, unit, {unit_key.id: private}, officer)
        request.state = GrantState.APPROVED
        request.decided_at = utcnow()
        audit.record(
            session,
            action=audit.actions.GRANT,
            actor=None,  # nobody approved: the system made the key (never the account's creator)
            object_id=officer.public_id,
            unit=unit,
            detail={
                "key": "unit",
                "unit": unit.code,
                "versions": str(unit_key.version),
                "request": request.public_id,
                "reason": "first_key_holder",
            },
        )
        return None
    return request


def descendants(session: Session, units: Iterable[Unit]) -> list[Unit]:
    """``units`` and every unit below them, parents before children."""
    out: list[Unit] = []
    seen: set[int] = set()
    frontier = [u for u in units]
    while frontier:
        fresh = [u for u in frontier if u.id not in seen]
        out += fresh
        seen |= {u.id for u in fresh}
        ids = [u.id for u in fresh]
        frontier = list(session.scalars(select(Unit).where(Unit.parent_id.in_(ids)))) if ids else []
    return out


def revoke_and_rotate(
    session: Session,
    officer: Officer,
    *,
    actor: Officer | None,
    reason: str,
    rotate: bool = True,
    client_address: str | None = None,
) -> list[Unit]:
    """Delete the account's unit key grants and withdraw its requests; with ``rotate``, a new
    key version for every unit its chain opened (its units and those below), so new tips
    there are sealed to keys it never held. Returns the rotated units."""
    withdraw_requests(session, officer)
    held = revoke_officer_grants(session, officer)
    if not held:
        return []
    audit.record(
        session,
        action=audit.actions.GRANT_REVOKE,
        actor=actor,
        object_id=officer.public_id,
        unit=held[0],
        client_address=client_address if actor is not None else None,
        detail={"units": ",".join(u.code for u in held)[:400], "reason": reason},
    )
    if not rotate:
        return []
    rotated = [u for u in descendants(session, held) if u.keys]
    for unit in rotated:
        unit_key, _private = create_unit_key(session, unit)
        audit.record(
            session,
            action=audit.actions.KEY_ROTATE,
            actor=actor,
            object_id=unit.public_id,
            unit=unit,
            detail={"version": str(unit_key.version), "resealed": "0", "reason": reason},
        )
    return rotated


def end_sessions(session: Session, officer: Officer, *, actor: Officer | None, reason: str) -> None:
    """Every session of the account ends at its next request (triage.users.load_user)."""
    officer.session_epoch = (officer.session_epoch or 0) + 1
    audit.record(
        session,
        action=audit.actions.SESSIONS_ENDED,
        actor=actor,
        object_id=officer.public_id,
        unit=officer.unit,
        detail={"reason": reason},
    )
