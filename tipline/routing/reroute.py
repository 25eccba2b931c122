"""Intake's hook for a location that answers "please share a location" (issue 3).

Runs inside intake's expansion transaction (SQLAlchemy Core), where the event is briefly
plaintext: if the tip is dispatched and flagged ``needs_location``, the point is sealed to
the current transit epoch into ``tips.sealed_reroute`` and a ``reroute`` job is queued through the
outbox; ``jobs.dispatch.reroute_tip`` opens it, erases it and moves the tip.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, select, update

from keys import PublicKey
from tipline.models import Tip
from tipline.outbox import add_jobs
from tipline.routing.service import seal_reroute

TIPS = cast(Table, Tip.__table__)


def request_reroute(
    conn: Connection, transit: PublicKey, tip_id: int, location: tuple[float, float]
) -> bool:
    """Queue a re-route of tip ``tip_id`` to ``location`` if it is waiting for one."""
    row = conn.execute(
        select(TIPS.c.public_id, TIPS.c.needs_location, TIPS.c.dispatched_at).where(
            TIPS.c.id == tip_id
        )
    ).one_or_none()
    if row is None or not row.needs_location or row.dispatched_at is None:
        return False
    sealed = seal_reroute(transit, row.public_id, location[0], location[1])
    conn.execute(update(TIPS).where(TIPS.c.id == tip_id).values(sealed_reroute=sealed))
    add_jobs(conn, [("reroute", row.public_id)])
    return True
