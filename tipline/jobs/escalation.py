"""The escalation job: an urgent tip still unopened goes up one level (routing.escalation)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from tipline import runtime
from tipline.db import write_session
from tipline.models import Tip
from tipline.routing.escalation import escalate, needs_escalation, schedule

log = logging.getLogger(__name__)


def check_escalation(tip_public_id: str, level: int) -> str:
    """Escalate if the tip is still urgent, open and unopened at ``level``; idempotent."""
    rt = runtime.current()
    with write_session(rt.sessions) as session:
        tip = session.scalars(select(Tip).where(Tip.public_id == tip_public_id)).one_or_none()
        if tip is None or not needs_escalation(tip, level):
            return "not needed"
        unit = escalate(session, tip)
        if unit is None:
            return "top reached"
        code, next_level = unit.code, tip.escalation_level
        has_parent = unit.parent is not None
    log.info("escalation: tip %s to %s", tip_public_id, code)
    if has_parent:
        schedule(rt.redis, tip_public_id, next_level)
    return f"escalated to {code}"
