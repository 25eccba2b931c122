"""Duty assignment: who in the unit gets a dispatched tip, and who hears about it.

Officers mark themselves on duty; a tip goes to the on-duty key holder of the unit with the
fewest open tips (ties: the longest-enrolled), so work spreads without a dispatcher. Nobody on
duty: the tip waits in the unit's queue and the commanders nearest above are notified.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
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


def on_duty_key_holders(session: Session, unit: Unit) -> list[Officer]:
    """Who of ``unit`` can take a tip now: on duty, active, and a key holder in fact (holding
    a grant of the unit's current key, which tips are sealed to), not an account still
    waiting for a key holder's approval (tipline.grants)."""
    current = unit.current_key
    if current is None:
        return []
    holders = select(KeyGrant.holder_id).where(
        KeyGrant.subject_kind == Subject.UNIT_KEY,
        KeyGrant.subject_id == current.id,
        KeyGrant.holder_kind == Holder.OFFICER,
    )
    return list(
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


def _least_loaded(officers: list[Officer], counts: dict[int, int]) -> Officer | None:
    if not officers:
        return None
    return min(officers, key=lambda o: (counts.get(o.id, 0), o.role == Role.COMMANDER, o.id))


def pick_officer(session: Session, unit: Unit) -> Officer | None:
    """The on-duty key holder of ``unit`` with the fewest open tips, or None."""
    officers = on_duty_key_holders(session, unit)
    return _least_loaded(officers, open_tip_counts(session, [o.id for o in officers]))


class DutyRoster:
    """:func:`assign` for a batch of tips in one transaction (the relay's dispatch): each
    unit's on-duty key holders, their open-tip counts and its commanders are read once, and
    the counts kept up to date as the batch assigns. Notifications and audit events as
    :func:`assign` writes them, in Core statements."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._officers: dict[int, list[Officer]] = {}
        self._counts: dict[int, int] = {}
        self._commanders: dict[int, list[int]] = {}
        self._notifications: list[dict[str, Any]] = []

    def pick(self, unit_id: int) -> int | None:
        """The officer (id) the next tip of ``unit_id`` goes to, counted as assigned."""
        officers = self._officers.get(unit_id)
        if officers is None:
            unit = self.session.get_one(Unit, unit_id)
            officers = self._officers[unit_id] = on_duty_key_holders(self.session, unit)
            self._counts.update(open_tip_counts(self.session, [o.id for o in officers]))
        chosen = _least_loaded(officers, self._counts)
        if chosen is None:
            return None
        self._counts[chosen.id] = self._counts.get(chosen.id, 0) + 1
        return chosen.id

    def announce(
        self, tip_id: int, tip_public_id: str, unit_id: int, unit_code: str, assignee: int | None
    ) -> None:
        """Notify the assignee (and audit the assignment), or the unit and its commanders."""
        rows: list[dict[str, Any]]
        if assignee is not None:
            officer = next(o for o in self._officers[unit_id] if o.id == assignee)
            kind = NotificationKind.ASSIGNED_TIP
            rows = [{"officer_id": assignee, "unit_id": None, "tip_id": tip_id, "kind": kind}]
            audit.record(
                self.session,
                action=audit.actions.ASSIGN,
                object_id=tip_public_id,
                unit_code=unit_code,
                detail={"assignee": officer.public_id, "by": "duty_roster"},
            )
        else:
            kind = NotificationKind.UNASSIGNED_TIP
            rows = [{"officer_id": None, "unit_id": unit_id, "tip_id": tip_id, "kind": kind}] + [
                {"officer_id": commander, "unit_id": unit_id, "tip_id": tip_id, "kind": kind}
                for commander in self._commander_ids(unit_id)
            ]
        self._notifications.extend(rows)

    def flush(self) -> None:
        """Write the batch's notifications: one Core statement (the ORM's bulk insert a tip
        cost as much as the rest of the announcement, issue 15's profile)."""
        if self._notifications:
            self.session.connection().execute(_INSERT_NOTIFICATION, self._notifications)
            self._notifications = []

    def _commander_ids(self, unit_id: int) -> list[int]:
        """:func:`commanders_for` in Core, remembered for the batch: their ids."""
        known = self._commanders.get(unit_id)
        if known is not None:
            return known
        conn = self.session.connection()
        current: int | None = unit_id
        found: list[int] = []
        while current is not None:
            found = list(conn.scalars(_COMMANDERS_OF_UNIT, {"unit_id": current}))
            if found:
                break
            current = conn.scalar(_PARENT_OF_UNIT, {"unit_id": current})
        self._commanders[unit_id] = found
        return found


_INSERT_NOTIFICATION = insert(cast(Table, Notification.__table__))
_OFFICERS = cast(Table, Officer.__table__)
_COMMANDERS_OF_UNIT = select(_OFFICERS.c.id).where(
    _OFFICERS.c.unit_id == bindparam("unit_id"),
    _OFFICERS.c.role == Role.COMMANDER,
    _OFFICERS.c.active.is_(True),
)
_PARENT_OF_UNIT = select(cast(Table, Unit.__table__).c.parent_id).where(
    cast(Table, Unit.__table__).c.id == bindparam("unit_id")
)


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
