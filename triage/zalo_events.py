"""The admins' view of what Zalo sent and what Zalo refused: metadata only, never content.

- Quarantine: validly signed events intake could not read (tipline.models.quarantined_event),
  by time, OA, event name, reason and size. Their content is sealed to the receiving unit's
  key, which admins do not hold.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from tipline.models import OfficialAccount, QuarantinedEvent, Role, Unit
from tipline.web.labels import QUARANTINE_REASON_LABELS, label
from triage.users import runtime, staff

blueprint = Blueprint("zalo_events", __name__, url_prefix="/admin/zalo-events")
SHOWN = 200  # quarantined events listed, newest first


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
    return render_template("admin/zalo_events.html", total=total, quarantined=rows)
