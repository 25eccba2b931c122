"""The deadlines the commander's pages count against, as SQL conditions on plaintext metadata.

- First-open SLA per priority (tipline.web.labels.FIRST_OPEN_SLA): a tip nobody has opened
  past it is *overdue*.
- Closure: the Criminal Procedure Code 2015 (art. 147) gives 20 days to settle a crime report
  (extendable); an open tip older than :data:`CLOSURE_DEADLINE` is *past its closure deadline*.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, func, literal
from sqlalchemy.orm import Session

from tipline.models import OPEN_STATUSES, Priority, Tip
from tipline.models.base import UTCDateTime
from tipline.web.labels import FIRST_OPEN_SLA

CLOSURE_DEADLINE = timedelta(days=20)


def seconds_between(db: Session, start: Any, end: Any) -> ColumnElement[float]:
    if db.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(ColumnElement[float], func.extract("epoch", end - start))


def sla_seconds() -> ColumnElement[float]:
    return case(
        *((Tip.priority == p.value, d.total_seconds()) for p, d in FIRST_OPEN_SLA.items()),
        else_=FIRST_OPEN_SLA[Priority.NORMAL].total_seconds(),
    )


def unopened_overdue(db: Session, now: datetime) -> ColumnElement[bool]:
    """Nobody opened it, and its first-open SLA has passed."""
    now_value = literal(now, UTCDateTime())
    return and_(
        Tip.first_opened_at.is_(None),
        seconds_between(db, Tip.created_at, now_value) > sla_seconds(),
    )


def closure_overdue(now: datetime) -> ColumnElement[bool]:
    """Still open after :data:`CLOSURE_DEADLINE`."""
    return and_(Tip.status.in_(OPEN_STATUSES), Tip.created_at < now - CLOSURE_DEADLINE)
