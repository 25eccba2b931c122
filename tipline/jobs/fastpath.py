"""The relay's fast path: dispatch tips and send replies in batches, without an RQ job each.

An RQ job per tip cost about a third of a tip's CPU (two jobs, their Redis round trips and
bookkeeping, a Zalo client each; issue 15). The relay loop (tipline.jobs.worker) instead
*claims* pending outbox rows of the kinds in :data:`FAST_KINDS` (marks them relayed, in one
write transaction; on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so two relays never claim one
row) and runs them itself: the dispatches as one batch (tipline.jobs.dispatch.dispatch_many),
then the replies concurrently over the process's one Zalo client (kept-alive connections).

RQ stays for what needs it: a dispatch that raised and a send Zalo deferred are handed to RQ
(``enqueue_now``, a deferred send after its first retry interval) with the job's retries; media
and re-routes always go through RQ (``drain``). Nothing claimed is lost: a worker killed after
claiming leaves undispatched tips and queued replies that the sweeper (tipline.jobs.sweeper)
queues as RQ jobs after ``TIPLINE_SWEEP_AFTER_SECONDS``. Nothing is sent twice: dispatch
claims its tip with a guarded update, and every send, fast or RQ, holds the message's lease
(tipline.jobs.outbound.deliver_once) and checks Zalo's mark of an earlier acceptance.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, update

from tipline.db import write_transaction
from tipline.jobs.dispatch import dispatch_many
from tipline.jobs.outbound import deliver_many, process_client
from tipline.jobs.relay import RELAY_LOCK, RELAY_LOCK_TTL, enqueue_now
from tipline.models import utcnow
from tipline.outbox import JOBS, OUTBOX, job_id, job_queue
from tipline.runtime import Runtime

log = logging.getLogger(__name__)

FAST_KINDS = ("dispatch", "send")
DISPATCH_BATCH = 50
SEND_BATCH = 100
SENDERS = 8  # concurrent sends per process (each waits on Zalo, not on the CPU)
DEFERRED_SEND_DELAY = timedelta(seconds=5)  # the send job's first retry interval

_senders: ThreadPoolExecutor | None = None
_senders_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _senders
    with _senders_lock:
        if _senders is None:
            _senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="tipline-send")
        return _senders


def claim(runtime: Runtime, kind: str, limit: int) -> list[str]:
    """Take up to ``limit`` pending outbox rows of ``kind``, oldest first: their refs."""
    with write_transaction(runtime.engine, row_locks=True) as conn:
        query = (
            select(OUTBOX.c.id, OUTBOX.c.ref)
            .where(OUTBOX.c.enqueued_at.is_(None), OUTBOX.c.job == kind)
            .order_by(OUTBOX.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if rows:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([row.id for row in rows]), OUTBOX.c.enqueued_at.is_(None))
                .values(enqueued_at=utcnow())
            )
    return [str(row.ref) for row in rows]


def hand_to_rq(runtime: Runtime, pairs: list[tuple[str, str]]) -> None:
    """Queue (kind, ref) jobs in RQ, under the relay's lock as the sweeper does; if neither the
    lock nor Redis can be had, the sweeper queues them later."""
    if not pairs:
        return
    lock = runtime.redis.lock(RELAY_LOCK, timeout=RELAY_LOCK_TTL, blocking_timeout=5)
    if not lock.acquire():
        log.warning("fast path: %d jobs left to the sweeper (relay lock busy)", len(pairs))
        return
    try:
        enqueue_now(runtime.redis, pairs)
    finally:
        try:
            lock.release()
        except Exception:  # noqa: S110 - the lock expired; nothing to release  # nosec B110
            pass


def dispatch_batch(runtime: Runtime) -> int:
    """Claim and dispatch up to DISPATCH_BATCH tips together (tipline.jobs.dispatch:
    planned before the write lock, written in one transaction); those that failed go to RQ."""
    refs = claim(runtime, "dispatch", DISPATCH_BATCH)
    if not refs:
        return 0
    try:
        outcomes = dispatch_many(runtime, refs)
    except Exception:
        log.exception("fast path: a batch of %d dispatches failed; handing it to RQ", len(refs))
        outcomes = dict.fromkeys(refs, "failed")
    hand_to_rq(runtime, [("dispatch", ref) for ref in refs if outcomes.get(ref) == "failed"])
    return len(refs)


def send_batch(runtime: Runtime) -> int:
    """Claim up to SEND_BATCH replies and send them concurrently over the process's one Zalo
    client (tipline.jobs.outbound.deliver_many: one transaction counts the attempts, one every
    50 ms records what has finished); the deferred, or all of them if the batch raised, go to
    RQ."""
    refs = claim(runtime, "send", SEND_BATCH)
    if not refs:
        return 0
    try:
        states = deliver_many(runtime, refs, process_client(runtime.config), _pool())
    except Exception:
        log.exception("fast path: a batch of %d sends failed; handing it to RQ", len(refs))
        states = {}
    later = [ref for ref in refs if ref not in states or not isinstance(states[ref], str)]
    if later:
        _schedule_sends(runtime, later)
    return len(refs)


def _schedule_sends(runtime: Runtime, refs: list[str]) -> None:
    """RQ send jobs, each after the first retry interval, with the job's own retries."""
    spec = JOBS["send"]
    queue = job_queue(spec.queue, runtime.redis)  # JSON jobs, as every queue (tipline.outbox)
    try:
        for ref in refs:
            queue.enqueue_in(
                DEFERRED_SEND_DELAY,
                spec.func,
                ref,
                job_id=job_id("send", ref),
                job_timeout=spec.timeout,
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
                retry=spec.retry,
            )
    except Exception:  # Redis is down: the sweeper queues them once it is back
        log.exception("fast path: %d deferred sends left to the sweeper", len(refs))
