"""Duty assignment: who in the unit gets a dispatched tip, and who hears about it.

Officers mark themselves on duty; a tip goes to the on-duty key holder of the unit with the
fewest open tips (ties: the longest-enrolled), so work spreads without a dispatcher. Nobody on
duty: the tip waits in the unit's queue and the commanders nearest above are notified.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tipline import audit
from tipline.models import (
    CLOSED_STATUSES,
    KEY_HOLDING_ROLES,
    Holder,
    KeyGrant,
    Notification,
    NotificationKind,
    Officer,
    Role,
    Subject,
    Tip,
    Unit,
)


def set_on_duty(
    session: Session, officer: Officer, on_duty: bool, *, by: Officer | None = None
) -> None:
    """Mark an officer on or off duty; only key holders of a unit can take tips.

    Each change is a DUTY_CHANGE event (``by``: who changed it, None for the command line),
    the roster the auditor's off-hours rule replays (tipline.audit.roster)."""
    if officer.role not in KEY_HOLDING_ROLES or officer.unit_id is None:
        raise ValueError("only officers and commanders of a unit go on duty")
    if officer.on_duty == on_duty:
        return
    officer.on_duty = on_duty
    audit.record(
        session,
        action=audit.actions.DUTY_CHANGE,
        actor=by,
        object_id=officer.public_id,
        unit=officer.unit,
        detail={"on_duty": "1" if on_duty else "0"},
    )


def open_tip_counts(session: Session, officer_ids: list[int]) -> dict[int, int]:
    if not officer_ids:
        return {}
    rows = session.execute(
        select(Tip.assignee_id, func.count(Tip.id))
        .where(Tip.assignee_id.in_(officer_ids), Tip.status.not_in(list(CLOSED_STATUSES)))
        .group_by(Tip.assignee_id)
    ).all()
    return {int(officer_id): int(count) for officer_id, count in rows if officer_id is not None}


def pick_officer(session: Session, unit: Unit) -> Officer | None:
    """The on-duty key holder of ``unit`` with the fewest open tips, or None. Key holder in
    fact: someone holding a grant of the unit's current key (tips are sealed to it), not an
    account still waiting for a key holder's approval (tipline.grants)."""
    current = unit.current_key
    if current is None:
        return None
    holders = select(KeyGrant.holder_id).where(
        KeyGrant.subject_kind == Subject.UNIT_KEY,
        KeyGrant.subject_id == current.id,
        KeyGrant.holder_kind == Holder.OFFICER,
    )
    officers = list(
        session.scalars(
            select(Officer)
            .where(
                Officer.unit_id == unit.id,
                Officer.on_duty.is_(True),
                Officer.active.is_(True),
                Officer.role.in_([Role.OFFICER, Role.COMMANDER]),
                Officer.id.in_(holders),
            )
            .order_by(Officer.id)
        )
    )
    if not officers:
        return None
    counts = open_tip_counts(session, [o.id for o in officers])
    return min(officers, key=lambda o: (counts.get(o.id, 0), o.role == Role.COMMANDER, o.id))


def commanders_for(session: Session, unit: Unit | None) -> list[Officer]:
    """The commanders of ``unit``, or of the nearest unit above it that has any."""
    while unit is not None:
        found = list(
            session.scalars(
                select(Officer).where(
                    Officer.unit_id == unit.id,
                    Officer.role == Role.COMMANDER,
                    Officer.active.is_(True),
                )
            )
        )
        if found:
            return found
        unit = unit.parent
    return []


def notify(
    session: Session,
    kind: NotificationKind,
    tip: Tip,
    *,
    unit: Unit | None,
    officers: list[Officer],
) -> None:
    """One notice for the unit and one per officer: public ids and fixed kinds, no content."""
    if unit is not None:
        session.add(Notification(unit_id=unit.id, tip_id=tip.id, kind=kind))
    for officer in officers:
        session.add(
            Notification(
                officer_id=officer.id, unit_id=unit.id if unit else None, tip_id=tip.id, kind=kind
            )
        )


def assign(session: Session, tip: Tip, unit: Unit) -> Officer | None:
    """Assign ``tip`` in ``unit``; notify the assignee, or the commanders when nobody is on duty."""
    officer = pick_officer(session, unit)
    tip.assignee = officer
    if officer is not None:
        notify(session, NotificationKind.ASSIGNED_TIP, tip, unit=None, officers=[officer])
        audit.record(
            session,
            action=audit.actions.ASSIGN,
            object_id=tip.public_id,
            unit=unit,
            detail={"assignee": officer.public_id, "by": "duty_roster"},
        )
    else:
        notify(
            session,
            NotificationKind.UNASSIGNED_TIP,
            tip,
            unit=unit,
            officers=commanders_for(session, unit),
        )
    return officer
