"""The dispatch job: from the transit grant to the unit that should act on the tip.

Idempotent: the first run to claim the tip (an UPDATE guarded by ``dispatched_at IS NULL``)
dispatches it; any later or concurrent run finds it claimed and stops.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tipline import audit, runtime
from tipline.jobs.outbox import drain
from tipline.keychain import grant_tip_to_unit, open_tip_from_transit
from tipline.models import Tip, Unit, utcnow
from tipline.outgoing import queue_outbound
from tipline.routing import route_tip

log = logging.getLogger(__name__)


def acknowledgement_text(tip: Tip, unit: Unit) -> str:
    """The informant's receipt, in Vietnamese, with the code to quote when following up."""
    return (
        f"{unit.name} đã nhận được tin báo của bạn.\n"
        f"Mã tiếp nhận: {tip.receipt_code}\n"
        "Danh tính người báo tin được giữ bí mật theo Luật Tố cáo. "
        "Bạn có thể nhắn thêm thông tin, hình ảnh hoặc vị trí trong cuộc trò chuyện này."
    )


def _hold(session: Session, tip: Tip, reason: str) -> None:
    tip.dispatch_error = reason
    tip.dispatch_attempts += 1


def dispatch_tip(tip_public_id: str) -> str:
    """Route the tip, grant its key to the unit, drop the transit grant, queue the ack."""
    rt = runtime.current()
    config = rt.config
    with rt.sessions() as session, session.begin():
        tip = session.scalars(select(Tip).where(Tip.public_id == tip_public_id)).one_or_none()
        if tip is None:
            log.warning("dispatch: no tip %s", tip_public_id)
            return "missing"
        if tip.dispatched_at is not None:
            return "already dispatched"
        decision = route_tip(session, tip)
        unit = decision.unit
        if unit is None or unit.current_key is None:
            reason = decision.reason if unit is None else "unit_has_no_key"
            _hold(session, tip, reason)
            log.warning("dispatch: tip %s held (%s)", tip.public_id, reason)
            return "held"
        now = utcnow()
        claimed = session.execute(
            update(Tip)
            .where(Tip.id == tip.id, Tip.dispatched_at.is_(None))
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed != 1:
            return "already dispatched"
        tip_key = open_tip_from_transit(session, tip, config.secrets.transit_key)
        grant_tip_to_unit(session, tip, tip_key, unit)
        tip.dispatched_at = now
        tip.unit = unit
        tip.dispatch_error = None
        tip.dispatch_attempts += 1
        audit.record(
            session,
            action=audit.actions.TIP_DISPATCHED,
            object_id=tip.public_id,
            unit=unit,
            detail={"unit": unit.code},
        )
        queue_outbound(
            session, tip, acknowledgement_text(tip, unit), relay_public=config.secrets.relay_public
        )
    log.info("dispatch: tip %s to unit %s", tip_public_id, unit.code)
    drain(rt.sessions, rt.redis)  # send the acknowledgement now rather than at the next tick
    return "dispatched"
