"""Escalating urgent tips nobody opened: to the parent unit and its commanders.

An urgent tip not opened within ``TIPLINE_ESCALATE_AFTER_MINUTES`` (15 by default) escalates
one level up; each level schedules the next check, until the top of the tree. The checks are
RQ scheduled jobs (``enqueue_in``; the worker runs RQ's scheduler), so they survive a worker
restart and run on any worker.
"""

from __future__ import annotations

import os
from datetime import timedelta

from redis import Redis
from sqlalchemy.orm import Session

from tipline import audit
from tipline.models import NotificationKind, Priority, Tip, Unit, utcnow
from tipline.outbox import job_queue
from tipline.routing.duty import commanders_for, notify

QUEUE = "dispatch"
JOB = "tipline.jobs.escalation.check_escalation"


def escalate_after() -> timedelta:
    return timedelta(minutes=float(os.environ.get("TIPLINE_ESCALATE_AFTER_MINUTES", "15")))


def schedule(redis: Redis, tip_public_id: str, level: int, delay: timedelta | None = None) -> None:
    """Check ``tip`` at ``level`` after ``delay``; one job id per (tip, level), so no doubles."""
    job_queue(QUEUE, redis).enqueue_in(
        delay if delay is not None else escalate_after(),
        JOB,
        tip_public_id,
        level,
        job_id=f"escalate-{tip_public_id}-{level}",
        result_ttl=600,
        failure_ttl=7 * 24 * 3600,
    )


def needs_escalation(tip: Tip, level: int) -> bool:
    return (
        tip.priority == Priority.URGENT
        and tip.is_open
        and tip.unit_opened_at is None
        and tip.dispatched_at is not None
        and tip.escalation_level == level
    )


def escalate(session: Session, tip: Tip) -> Unit | None:
    """Raise ``tip`` one level: notify the unit above the last one told, and its commanders.

    The parent unit's key already opens the tip (every unit key is granted to its parent), so
    escalation needs no key: it is a notice, and the tip stays in its unit's queue.
    """
    unit = tip.unit
    for _ in range(tip.escalation_level + 1):
        unit = unit.parent if unit is not None else None
    if unit is None:
        return None
    notify(
        session, NotificationKind.ESCALATED, tip, unit=unit, officers=commanders_for(session, unit)
    )
    tip.escalation_level += 1
    tip.escalated_at = utcnow()
    audit.record(
        session,
        action=audit.actions.SLA_NOTICE,
        object_id=tip.public_id,
        unit=unit,
        detail={"to_unit": unit.code, "level": str(tip.escalation_level)},
    )
    return unit
