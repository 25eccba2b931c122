"""Re-enqueue work that was committed but never finished: nothing acknowledged is lost.

Covers Redis restarts (queued jobs gone), a crash between commit and relay, and workers killed
mid-job. Jobs are idempotent, and an already active job is not queued twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from redis import Redis
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from tipline.jobs.relay import RELAY_LOCK, RELAY_LOCK_TTL, enqueue_now
from tipline.models import Attachment, Direction, Message, OutboxEntry, Tip, utcnow
from tipline.models.attachment import PENDING_PREDICATE
from tipline.models.message import QUEUED_PREDICATE

log = logging.getLogger(__name__)


def sweep(
    sessions: sessionmaker[Session], redis: Redis, older_than: timedelta, limit: int = 1000
) -> int:
    """Queue again the dispatch of old undispatched tips, the sending of old queued replies and
    the cleaning of attachments still pending."""
    cutoff = utcnow() - older_than
    with sessions() as session:
        # Rows still to relay, or relayed (or claimed by a relay's fast path,
        # tipline.jobs.fastpath) within ``older_than``: their work is under way.
        pending_outbox = select(OutboxEntry.ref).where(
            (OutboxEntry.enqueued_at.is_(None)) | (OutboxEntry.enqueued_at >= cutoff)
        )
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
                text(QUEUED_PREDICATE),  # as written in its partial index, so it is used
                Message.created_at < cutoff,
                Message.public_id.not_in(pending_outbox),
            )
            .limit(limit)
        ).all()
        attachments = session.scalars(
            select(Attachment.public_id)
            .where(
                text(PENDING_PREDICATE),  # as written in its partial index, so it is used
                Attachment.created_at < cutoff,
                Attachment.public_id.not_in(pending_outbox),
            )
            .limit(limit)
        ).all()
    pairs = (
        [("dispatch", ref) for ref in tips]
        + [("send", ref) for ref in messages]
        + [("media", ref) for ref in attachments]
    )
    if not pairs:
        return 0
    # enqueue_now checks then queues: two sweepers (one per worker) or a sweeper and the relay
    # doing that at once could both queue a job, and two workers would then run it together:
    # for a send, two copies of one message on the informant's phone. One at a time.
    lock = redis.lock(RELAY_LOCK, timeout=RELAY_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return 0  # the relay is at it; the next sweep comes soon
    try:
        queued = enqueue_now(redis, pairs)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: S110 - the lock expired; nothing to release  # nosec B110
            pass
    if queued:
        log.warning(
            "sweeper re-enqueued %d jobs (%d tips, %d messages, %d attachments)",
            queued,
            len(tips),
            len(messages),
            len(attachments),
        )
    return queued
