"""Jobs written in the same transaction as their data: the transactional outbox.

Per-request ``enqueue`` is the slowest part of intake (DESIGN.md) and loses the job when Redis
is down. Instead a writer adds an outbox row with :func:`add_jobs`, the one way to schedule
work, and it commits with the tip, message or attachment it is about; the relay
(:mod:`tipline.jobs.relay`) later moves committed rows into RQ. This module sits below every
writer (intake, routing, outgoing messages) and knows only the models.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from redis import Redis
from redis._defaults import DEFAULT_SOCKET_TIMEOUT
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer
from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

from tipline.models import OutboxEntry, utcnow

log = logging.getLogger(__name__)

OUTBOX = cast(Table, OutboxEntry.__table__)
# The relay's doorbell (tipline.jobs.worker): a Redis list that a writer pushes to once its
# work is committed (a stored event), and that idle relays wait on with BLPOP instead of
# polling the database. It carries no data; a few rings are kept, one per waiting relay.
RELAY_WAKE = "tipline:relay:wake"
RELAY_WAKE_KEEP = 8
# Set in an ORM session's ``info`` by add_jobs: the session's factory rings the doorbell once
# the session commits (tipline.runtime), so an officer's reply leaves at once rather than at an
# idle relay's next look.
RING_ON_COMMIT = "tipline_ring_relay"


@dataclass(frozen=True)
class JobKind:
    queue: str
    func: str  # an import path: queued jobs name it, so it never changes
    timeout: int = 120
    retry: Retry | None = None


JOBS: dict[str, JobKind] = {
    "dispatch": JobKind("dispatch", "tipline.jobs.dispatch.dispatch_tip"),
    "reroute": JobKind("dispatch", "tipline.jobs.dispatch.reroute_tip"),
    "send": JobKind(
        "outbound",
        "tipline.jobs.outbound.send_message",
        retry=Retry(max=5, interval=[5, 30, 120, 600, 1800]),
    ),
    "notice": JobKind(
        "outbound",
        "tipline.jobs.notices.send_notice",
        retry=Retry(max=4, interval=[5, 30, 120, 600]),
    ),
    "media": JobKind(
        "media",
        "tipline.jobs.media.fetch_attachment",
        timeout=600,
        # Downloads failing for now (DNS, connection, timeout, 5xx) are tried again for about
        # two hours before the attachment is refused (tipline.jobs.media).
        retry=Retry(max=6, interval=[10, 60, 300, 900, 1800, 3600]),
    ),
}

QUEUE_NAMES = ("dispatch", "outbound", "media")

# Jobs are data: RQ's JSON serializer, never its default (pickle), for every queue, worker and
# job fetch, so that a job written into Redis by whoever holds a Redis password is parsed, not
# unpickled (unpickling runs code). JSON alone still lets a job name any importable function;
# the worker runs only these (tipline.jobs.worker.TiplineWorker refuses and logs the rest).
JOB_SERIALIZER = JSONSerializer
ALLOWED_JOBS = frozenset(
    {spec.func for spec in JOBS.values()} | {"tipline.jobs.escalation.check_escalation"}
)


def job_queue(name: str, redis: Redis) -> Queue:
    """The RQ queue ``name`` with Tipline's serializer: the one way to make a queue."""
    return Queue(name, connection=redis, serializer=JOB_SERIALIZER)


def job_id(kind: str, ref: str) -> str:
    """One RQ job id per (kind, object): lets the relay and sweeper see a job already queued."""
    return f"{kind}-{ref}"


def add_jobs(
    db: Session | Connection, jobs: Iterable[tuple[str, str]], now: datetime | None = None
) -> None:
    """Schedule each ``(kind, ref)`` (``ref`` a public id) to run once ``db`` commits."""
    at = now or utcnow()
    rows = [
        {"queue": JOBS[kind].queue, "job": kind, "ref": ref, "created_at": at} for kind, ref in jobs
    ]
    if rows:
        db.execute(insert(OUTBOX), rows)
        if isinstance(db, Session):
            db.info[RING_ON_COMMIT] = True


def wake_relay(redis: Redis) -> None:
    """Ring the relay's doorbell after committing work for it; best effort, never an error:
    a relay that misses the ring finds the work at its next check (tipline.jobs.worker)."""
    try:
        # One round trip while relays keep up; trimmed only when no relay has taken the rings
        # (every worker down). Each round trip was a tenth of a webhook's CPU (issue 15).
        if int(redis.lpush(RELAY_WAKE, b"1")) > RELAY_WAKE_KEEP:
            redis.ltrim(RELAY_WAKE, 0, RELAY_WAKE_KEEP - 1)
    except RedisError as exc:
        log.debug("relay wake-up not sent (%s)", type(exc).__name__)


def wait_for_work(redis: Redis, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the doorbell; whether it rang.

    The wait ends before the client's read timeout (its URL's ``socket_timeout``, else
    redis-py's 5 s): a BLPOP that outlasts it ends in a TimeoutError and a reconnection, not a
    quiet "no ring"."""
    read_timeout = redis.connection_pool.connection_kwargs.get(
        "socket_timeout", DEFAULT_SOCKET_TIMEOUT
    )
    if read_timeout is not None:
        timeout = min(timeout, 0.8 * float(read_timeout))
    return redis.blpop([RELAY_WAKE], timeout=timeout) is not None
