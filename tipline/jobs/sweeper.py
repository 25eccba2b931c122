"""Re-enqueue work that was committed but never finished: nothing acknowledged is lost.

Covers Redis restarts (queued jobs gone), a crash between commit and relay, and workers killed
mid-job. Jobs are idempotent, and an already active job is not queued twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tipline.jobs.outbox import enqueue_now
from tipline.models import Delivery, Direction, Message, OutboxEntry, Tip, utcnow

log = logging.getLogger(__name__)


def sweep(
    sessions: sessionmaker[Session], redis: Redis, older_than: timedelta, limit: int = 1000
) -> int:
    """Queue again the dispatch of old undispatched tips and the sending of old queued replies."""
    cutoff = utcnow() - older_than
    with sessions() as session:
        pending_outbox = select(OutboxEntry.ref).where(OutboxEntry.enqueued_at.is_(None))
        tips = session.scalars(
            select(Tip.public_id)
            .where(
                Tip.dispatched_at.is_(None),
                Tip.created_at < cutoff,
                Tip.public_id.not_in(pending_outbox),
            )
            .limit(limit)
        ).all()
        messages = session.scalars(
            select(Message.public_id)
            .where(
                Message.direction == Direction.OUTBOUND,
                Message.delivery == Delivery.QUEUED,
                Message.created_at < cutoff,
                Message.public_id.not_in(pending_outbox),
            )
            .limit(limit)
        ).all()
    pairs = [("dispatch", ref) for ref in tips] + [("send", ref) for ref in messages]
    if not pairs:
        return 0
    queued = enqueue_now(redis, pairs)
    if queued:
        log.warning(
            "sweeper re-enqueued %d jobs (%d tips, %d messages)", queued, len(tips), len(messages)
        )
    return queued
