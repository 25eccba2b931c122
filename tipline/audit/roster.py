"""The duty roster as the audit trail records it, for the off-hours anomaly rule.

Every change of an officer's duty state is a DUTY_CHANGE event (tipline.routing.duty), so the
roster at any past moment is a replay of the chain, which nobody can quietly rewrite after the
fact to excuse a night-time open. An officer the roster has never mentioned is judged by the
duty hours of :class:`~tipline.audit.query.AnomalyRules` instead.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.audit import actions
from tipline.audit.query import AnomalyRules
from tipline.models import AuditEvent


def on_duty_by_roster(
    session: Session, *, until: datetime | None = None
) -> Callable[[str, datetime], bool | None]:
    """(officer public id, moment) → on duty then by the roster; None if never rostered."""
    stmt = select(AuditEvent.object_id, AuditEvent.at, AuditEvent.detail_json).where(
        AuditEvent.action == actions.DUTY_CHANGE
    )
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    changes: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)
    for officer, at, detail in session.execute(stmt.order_by(AuditEvent.seq)):
        if officer:
            state = json.loads(detail).get("on_duty") if detail else None
            changes[officer].append((at, state == "1"))
    times = {officer: [at for at, _ in rows] for officer, rows in changes.items()}

    def on_duty(officer: str, moment: datetime) -> bool | None:
        rows = changes.get(officer)
        if not rows:
            return None
        index = bisect_right(times[officer], moment)
        return rows[index - 1][1] if index else False

    return on_duty


def roster_rules(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    base: AnomalyRules | None = None,
) -> AnomalyRules:
    """``base`` (the default rules) with the roster's answer for who was on duty when."""
    del since  # the state at ``since`` depends on every change before it
    return replace(base or AnomalyRules(), on_duty=on_duty_by_roster(session, until=until))
