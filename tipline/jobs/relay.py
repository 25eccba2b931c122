"""The outbox relay: moving the jobs written by :mod:`tipline.outbox` into RQ in batches.

:func:`drain` moves committed outbox rows to RQ with one pipeline per batch; the sweeper
(:mod:`tipline.jobs.sweeper`) re-queues what RQ lost. A job may run more than once (a crash
after enqueue, before the row is marked); every job is idempotent.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tipline.db import write_session
from tipline.models import OutboxEntry, utcnow
from tipline.outbox import JOB_SERIALIZER, JOBS, job_id, job_queue

ACTIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
RELAY_LOCK = "tipline:outbox-relay"
# Short, and renewed by each batch: a worker killed while holding the lock (it is held for a
# few milliseconds ten times a second) stops every relay and sweeper until it expires; with
# 60 s, one unlucky SIGKILL held up every tip's dispatch for a minute (tests/faults).
RELAY_LOCK_TTL = 10


def _worker_died(redis: Redis, job: Job) -> bool:
    """True when the worker that started ``job`` is known to be dead: the job is not running.

    A worker killed mid-job (SIGKILL, out of memory, or RQ quitting when Redis vanished while
    it finished a job) leaves the job "started". RQ gives up on it only once its timeout plus
    a minute has passed *and* a worker's ten-minute maintenance comes round; until then
    :func:`enqueue_now` would skip it as active, and its tip would wait that long. A worker on
    this machine is dead when its process is gone; one whose registration expired stopped
    heartbeating long ago. A worker on another machine is presumed alive (RQ's cleanup covers
    it).
    """
    if not job.worker_name:
        return False
    key = Worker.redis_worker_namespace_prefix + job.worker_name
    hostname, pid = redis.hmget(key, ["hostname", "pid"])
    if hostname is None:
        return True
    host = hostname.decode() if isinstance(hostname, bytes) else str(hostname)
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, and someone else's
        return False
    return False


STUCK_AFTER = timedelta(seconds=10)  # a live worker starts a job it dequeued within milliseconds


def _lost(redis: Redis, job: Job) -> bool:
    """True for a "queued" job that no worker will take.

    RQ moves a job it dequeues into an intermediate list and only then marks it started; a
    worker killed in between leaves it there, "queued", for RQ's maintenance to find after
    10 to 20 minutes. A job in neither list is lost outright.
    """
    queue = job_queue(job.origin, redis)
    if redis.lpos(queue.key, job.id) is not None:
        return False
    intermediate = queue.intermediate_queue
    if redis.lpos(intermediate.key, job.id) is None:
        return True
    intermediate.set_first_seen(job.id)
    first_seen = intermediate.get_first_seen(job.id)
    if first_seen is not None and datetime.now(UTC) - first_seen > STUCK_AFTER:
        intermediate.remove(job.id)
        return True
    return False


def _overdue(redis: Redis, job: Job) -> bool:
    """True for a "scheduled" job (an RQ retry) whose time passed with no scheduler to move it.

    RQ's scheduler runs in one worker, behind a lock; when that worker is killed, the others
    take the lock over only at their ten-minute maintenance, and retries wait until then.
    """
    registry = ScheduledJobRegistry(job.origin, connection=redis, serializer=JOB_SERIALIZER)  # type: ignore[no-untyped-call]
    try:
        due = registry.get_scheduled_time(job)
    except NoSuchJobError:
        return True
    if datetime.now(UTC) - due > STUCK_AFTER:
        registry.remove(job)
        return True
    return False


def _active(redis: Redis, job: Job | None) -> bool:
    if job is None:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED and _lost(redis, job):
        return False
    if status == JobStatus.SCHEDULED and _overdue(redis, job):
        return False
    if status == JobStatus.STARTED and _worker_died(redis, job):
        # Forget the dead execution, or RQ's own cleanup would later fail the new run.
        StartedJobRegistry(
            job.origin, connection=redis, serializer=JOB_SERIALIZER
        ).remove_executions(job)
        return False
    return status in ACTIVE


def enqueue_now(redis: Redis, pairs: list[tuple[str, str]]) -> int:
    """Put (kind, ref) jobs on their queues in one pipeline, skipping those already active.

    A job "started" by a worker that has since died, "queued" where no worker will take it, or
    "scheduled" for a time long past, is not active: it is queued again.
    """
    ids = [job_id(kind, ref) for kind, ref in pairs]
    existing = Job.fetch_many(ids, connection=redis, serializer=JOB_SERIALIZER)
    active = {job.id for job in existing if job is not None and _active(redis, job)}
    by_queue: dict[str, list[object]] = {}
    for (kind, ref), jid in zip(pairs, ids, strict=True):
        if jid in active:
            continue
        spec = JOBS[kind]
        by_queue.setdefault(spec.queue, []).append(
            Queue.prepare_data(
                spec.func,
                args=(ref,),
                job_id=jid,
                timeout=spec.timeout,
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
                retry=spec.retry,
            )
        )
    count = 0
    with redis.pipeline() as pipe:
        for name, datas in by_queue.items():
            count += len(job_queue(name, redis).enqueue_many(datas, pipeline=pipe))  # type: ignore[arg-type]
        pipe.execute()
    return count


def drain(
    sessions: sessionmaker[Session],
    redis: Redis,
    batch: int = 500,
    exclude: tuple[str, ...] = (),
) -> int:
    """Move pending outbox rows into RQ; return how many rows were relayed. ``exclude``: job
    kinds left for the relay's fast path (tipline.jobs.fastpath), which claims them itself."""
    lock = redis.lock(RELAY_LOCK, timeout=RELAY_LOCK_TTL, blocking=False)
    if not lock.acquire():
        return 0
    try:
        total = 0
        while True:
            lock.reacquire()
            with sessions() as session:
                query = select(OutboxEntry.id, OutboxEntry.job, OutboxEntry.ref).where(
                    OutboxEntry.enqueued_at.is_(None)
                )
                if exclude:
                    query = query.where(OutboxEntry.job.not_in(exclude))
                rows = session.execute(query.order_by(OutboxEntry.id).limit(batch)).all()
            if not rows:
                return total
            enqueue_now(redis, [(job, ref) for _, job, ref in rows])
            # A fresh write transaction: upgrading the read above to a write would fail on
            # SQLite whenever intake committed in between.
            with write_session(sessions, row_locks=True) as session:
                session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id.in_([row_id for row_id, _, _ in rows]))
                    .values(enqueued_at=utcnow())
                )
            total += len(rows)
            if len(rows) < batch:
                return total
    finally:
        try:
            lock.release()
        except Exception:  # noqa: S110 - the lock expired; nothing to release  # nosec B110
            pass
