"""The admins' view of what Zalo sent and what Zalo refused: metadata only, never content.

- Quarantine: validly signed events intake could not read (tipline.models.quarantined_event),
  by time, OA, event name, reason and size. Their content is sealed to the receiving unit's
  key, which admins do not hold.
- Sending problems: per OA, why Zalo refused messages lately (funding, the OA's package, the
  app's permissions, …), in words and with Zalo's codes: what an admin must fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tipline.audit import actions, record
from tipline.db import write_session
from tipline.models import (
    InboundEvent,
    Message,
    Officer,
    OfficialAccount,
    QuarantinedEvent,
    Role,
    Tip,
    Unit,
    utcnow,
)
from tipline.outbox import wake_relay
from tipline.web.labels import QUARANTINE_REASON_LABELS, SEND_PROBLEM_LABELS, label
from triage.users import runtime, staff

blueprint = Blueprint("zalo_events", __name__, url_prefix="/admin/zalo-events")
SHOWN = 200  # quarantined events listed, newest first
PROBLEMS_SINCE = timedelta(days=30)
ZALO_CODE = re.compile(r"zalo (-\d{1,6})\b")


@dataclass
class Problem:
    oa_id: str
    unit: str | None
    problem: str
    label: str
    count: int = 0
    last: datetime | None = None
    codes: set[str] = field(default_factory=set)


def _send_problems(db: Session, units: dict[str, str], now: datetime) -> list[Problem]:
    """Per OA and class, the sends Zalo refused in the last :data:`PROBLEMS_SINCE`."""
    found: dict[tuple[str, str], Problem] = {}
    rows = db.execute(
        select(Tip.oa_id, Message.delivery_problem, Message.delivery_error, Message.created_at)
        .join(Tip, Tip.id == Message.tip_id)
        .where(Message.delivery_problem.is_not(None), Message.created_at >= now - PROBLEMS_SINCE)
        .order_by(Message.id.desc())
        .limit(5000)
    )
    for oa_id, problem, error, created_at in rows:
        key = (oa_id or "", str(problem))
        entry = found.get(key)
        if entry is None:
            entry = found[key] = Problem(
                key[0], units.get(key[0]), key[1], label(SEND_PROBLEM_LABELS, key[1])
            )
        entry.count += 1
        entry.last = max(entry.last or created_at, created_at)
        code = ZALO_CODE.match(error or "")
        if code:
            entry.codes.add(code.group(1))
    return sorted(found.values(), key=lambda p: (p.oa_id, -p.count))


@blueprint.before_request
def _admins_only() -> None:
    if staff().role != Role.ADMIN:
        abort(403)


@blueprint.get("")
def index() -> ResponseReturnValue:
    with runtime().sessions() as db:
        total = db.scalar(select(func.count()).select_from(QuarantinedEvent)) or 0
        units = dict(
            db.execute(
                select(OfficialAccount.oa_id, Unit.name).join(
                    Unit, Unit.id == OfficialAccount.unit_id
                )
            ).all()
        )
        rows = [
            {
                "at": row.received_at,
                "oa_id": row.oa_id,
                "unit": units.get(row.oa_id or ""),
                "event_name": row.event_name,
                "reason": label(QUARANTINE_REASON_LABELS, row.reason),
                "size": row.size,
                "sealed": row.sealed_event is not None,
            }
            for row in db.execute(
                select(
                    QuarantinedEvent.received_at,
                    QuarantinedEvent.oa_id,
                    QuarantinedEvent.event_name,
                    QuarantinedEvent.reason,
                    QuarantinedEvent.size,
                    QuarantinedEvent.sealed_event.is_not(None).label("sealed_event"),
                )
                .order_by(QuarantinedEvent.id.desc())
                .limit(SHOWN)
            )
        ]
        problems = _send_problems(db, units, utcnow())
        failed = db.execute(
            select(
                InboundEvent.received_at,
                InboundEvent.expand_error,
                InboundEvent.expand_failures,
                InboundEvent.expand_failed_at,
            )
            .where(InboundEvent.processed_at.is_(None), InboundEvent.expand_failed_at.is_not(None))
            .order_by(InboundEvent.id)
            .limit(SHOWN)
        ).all()
    return render_template(
        "admin/zalo_events.html",
        total=total,
        quarantined=rows,
        problems=problems,
        failed=failed,
    )


@blueprint.post("/retry-failed")
def retry_failed() -> ResponseReturnValue:
    """Every event set aside by expansion goes back to the workers' queue, its count reset."""
    user = staff()
    with write_session(runtime().sessions) as db:
        count = db.execute(
            update(InboundEvent)
            .where(InboundEvent.processed_at.is_(None), InboundEvent.expand_failed_at.is_not(None))
            .values(expand_failed_at=None, expand_failures=0, expand_error=None)
        ).rowcount  # type: ignore[attr-defined]
        record(
            db,
            action=actions.EVENTS_RETRIED,
            actor=db.get_one(Officer, user.officer_id),
            client_address=request.remote_addr,
            detail={"events": str(count)},
        )
    wake_relay(runtime().redis)
    flash(_("%(count)d events will be tried again.", count=count), "info")
    return redirect(url_for("zalo_events.index"))
