"""`tipline worker`: an RQ worker with the scheduler, plus the outbox relay and sweeper.

The relay runs in a thread beside the worker so that a single `tipline worker` is all a small
install needs; several workers may run it at once because the relay takes a Redis lock.

A second thread refreshes the OAs' Zalo tokens before they expire (tipline.zalo.tokens), at
most once per :data:`TOKEN_REFRESH_EVERY` across all workers. It is a thread of its own, not a
pass of the relay loop, because its HTTP calls to Zalo may take seconds each: in the relay loop
they would hold up expansion and the transit epochs' rotation (whose old keys must be destroyed
on time).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import rq.scheduler as rq_scheduler
import rq.worker.base as rq_worker_base
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.job import Job
from sqlalchemy import exists, select

from tipline.audit.checkpoint import Checkpoint
from tipline.audit.witness import checkpoint_if_due
from tipline.counters import observe
from tipline.intake.expansion import expand_pending
from tipline.intake.recording import EVENTS
from tipline.jobs.fastpath import FAST_KINDS, dispatch_batch, send_batch
from tipline.jobs.relay import drain
from tipline.jobs.sweeper import sweep
from tipline.logs import RepeatFilter, start_run
from tipline.models import utcnow
from tipline.outbox import ALLOWED_JOBS, JOB_SERIALIZER, OUTBOX, QUEUE_NAMES, wait_for_work
from tipline.redis_conn import connect
from tipline.retention import retention_pass
from tipline.routing.geo import boundaries_from_config
from tipline.routing.places import gazetteer
from tipline.runtime import Runtime
from tipline.zalo.client import ZaloClient
from tipline.zalo.tokens import refresh_due_tokens

log = logging.getLogger(__name__)

# The relay loop (relay_loop): after a pass that found work, the next pass comes this soon (a
# pause that lets a batch gather); idle, it waits for the doorbell (tipline.outbox.wake_relay)
# and checks anyway every IDLE_CHECK, with two indexed reads and no lock, for work whose
# writer rang no bell (a ring lost while Redis was away: every writer rings). Each wake of an
# idle thread costs 3-10 ms of CPU on a small VM (cold caches): at 2 s the relay alone was
# 0.9 % of a core (issue 15). Not 5 s: the wait ends before the client's read timeout
# (tipline.outbox.wait_for_work; redis-py's is 5 s), so 4 s is the longest wait that is one
# BLPOP. The transit epochs' check (ROTATE_EVERY) and the others below run in the same wakes.
RELAY_INTERVAL = 0.05
IDLE_CHECK = 4.0
EXPAND_BATCH = 200
RETENTION_EVERY = 600.0  # seconds between retention passes (warn, then shred)
RETENTION_LOCK = "tipline:retention"
CHECKPOINT_CHECK = 15.0  # seconds between looks at whether an audit checkpoint is due
ROTATE_EVERY = 5.0  # seconds between checks of the transit epochs (tipline.transit)
TOKEN_REFRESH_EVERY = 600.0  # seconds between scheduled token refreshes, across all workers
OA_REFRESH_LOCK = "tipline:oa-refresh-round"
TOKEN_REFRESH_CHECK = 60.0  # seconds between a worker's looks at whether a pass is due


def refusal(job: Job, allowed: frozenset[str] = ALLOWED_JOBS) -> str | None:
    """Why ``job`` must not run (None: it may): data that is not Tipline's JSON, a function
    not on the allow-list, or a callback (an import path RQ would call on success or failure;
    Tipline sets none)."""
    try:
        name = job.func_name
    except DeserializationError:
        return "its data is not a JSON job (a pickled job?)"
    if name not in allowed:
        return f"function {name!r} is not a Tipline job"
    for callback in ("success", "failure", "stopped"):
        if getattr(job, f"_{callback}_callback_name", None):
            return f"it carries an on_{callback} callback"
    return None


# The live workers (tipline.health): each worker's name scored by its last heartbeat, written
# every HEARTBEAT_EVERY seconds; one older than HEARTBEAT_STALE seconds counts as gone.
HEARTBEATS = "tipline:worker-heartbeats"
HEARTBEAT_EVERY = 5.0
HEARTBEAT_STALE = 20.0
# While Redis cannot be reached at start: one line, then one every REDIS_WAIT_LOG_EVERY s.
REDIS_WAIT_LOG_EVERY = 60.0


def _run_scheduler(scheduler: Any) -> None:
    """RQ's scheduler process, whose failure (Redis went away) is one JSON log line.

    RQ's own ``run`` logs the error and re-raises, and multiprocessing then prints the same
    traceback again as plain text on stderr. The worker starts a new scheduler when Redis is
    back (RQ's maintenance).
    """
    try:
        rq_scheduler.run(scheduler)  # type: ignore[no-untyped-call]
    except BaseException:  # already logged by rq_scheduler.run
        os._exit(1)


# Seconds between RQ's scheduler's looks for jobs due (retries, deferred sends, SLA checks):
# RQ's 1 s cost an idle worker a quarter of its CPU (issue 15); every retry interval is 5 s or
# more, so a due job starts at most this late.
SCHEDULER_INTERVAL = 3


class TiplineScheduler(rq_scheduler.RQScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("interval", SCHEDULER_INTERVAL)
        super().__init__(*args, **kwargs)

    def start(self) -> Any:
        self._status = self.Status.STARTED
        self._connection = None  # a connection is not carried into the child (RQ's start)
        process = rq_scheduler.ForkProcess(target=_run_scheduler, args=(self,), name="Scheduler")
        self._process = process  # type: ignore[assignment]
        process.start()
        return process


class TiplineWorker(SimpleWorker):
    """RQ's SimpleWorker on Tipline's terms.

    Jobs are data (tipline.outbox.JOB_SERIALIZER): a job that is not JSON or names a function
    Tipline does not enqueue is refused before anything of it is imported or called, logged,
    and left in the failed registry for an operator to look at.

    It listens on no command channel. RQ's (shutdown, kill-horse, stop-job sent by pub/sub) is
    nothing Tipline sends: systemd and compose stop a worker with SIGTERM. Its listener thread
    woke an idle worker every second (issue 15) and, reading its UNSUBSCRIBE reply before the
    stop flag was set, could hold a shutdown for a minute.
    """

    def __init__(self, queues: list[str], **kwargs: object) -> None:
        kwargs.setdefault("serializer", JOB_SERIALIZER)
        super().__init__(queues, **kwargs)  # type: ignore[arg-type]
        self.allowed_jobs = ALLOWED_JOBS

    def subscribe(self) -> None:
        """No command channel (see the class)."""

    def unsubscribe(self) -> None:
        """Nothing was subscribed."""

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        # RQ builds its RQScheduler by that module-level name: ours, for this call only.
        original = rq_worker_base.RQScheduler  # type: ignore[attr-defined]
        rq_worker_base.RQScheduler = TiplineScheduler  # type: ignore[attr-defined]
        try:
            super()._start_scheduler(*args, **kwargs)
        finally:
            rq_worker_base.RQScheduler = original  # type: ignore[attr-defined]

    def execute_job(self, job: Job, queue: Queue) -> Any:
        # Each job's log lines carry an id of their own (never the job id: it names a tip).
        start_run("job")
        try:
            reason = refusal(job, self.allowed_jobs)
            if reason is None:
                return super().execute_job(job, queue)
            log.error("refused job %s on queue %s: %s", job.id, queue.name, reason)
            queue.intermediate_queue.remove(job.id)
            job.retries_left = None  # a forged retry count must not bring it back
            self.handle_job_failure(job, queue=queue, exc_string=f"refused by Tipline: {reason}")
            return None
        finally:
            _observe_stage(self.connection, job)


def _observe_stage(redis: Any, job: Any) -> None:
    """tipline.metrics' ``tipline_stage_seconds``: from the job's enqueueing to its end."""
    enqueued = getattr(job, "enqueued_at", None)
    if enqueued is None:
        return
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - enqueued).total_seconds()
    observe(redis, "stage_seconds", seconds, stage=getattr(job, "origin", "") or "other")


def retention_once(runtime: Runtime) -> bool:
    """Run a retention pass unless another worker ran one in the last RETENTION_EVERY seconds.

    Every worker runs the relay loop; two passes at once on PostgreSQL would both see the same
    expired tip and record its shredding twice. The lock is left to expire, not released, so
    a fleet of workers makes one pass per period between them.
    """
    lock = runtime.redis.lock(RETENTION_LOCK, timeout=RETENTION_EVERY, blocking=False)
    if not lock.acquire():
        return False
    retention_pass(runtime.sessions, runtime.config, utcnow())
    return True


def checkpoint_once(runtime: Runtime) -> Checkpoint | None:
    """A witnessed audit checkpoint when one is due (tipline.audit.witness)."""
    config = runtime.config
    return checkpoint_if_due(
        runtime.sessions,
        runtime.witness,
        config.secrets.audit_signing_key,
        every_events=config.checkpoint_events,
        every=timedelta(minutes=config.checkpoint_minutes),
    )


def token_refresh_once(runtime: Runtime) -> bool:
    """Refresh the OAs' tokens that are due, unless a worker did in the last period.

    The lock is left to expire, as retention's is: one pass per TOKEN_REFRESH_EVERY between
    all workers. Each OA is refreshed under its own lock besides (tipline.zalo.tokens), so a
    worker's pass and a send's refresh never spend one refresh token twice. A worker without
    the relay key's private half cannot open tokens and leaves the pass to the others; none
    runs while the app's id or secret is unset, which Zalo would answer by refusing every OA.
    """
    config = runtime.config
    if config.secrets.relay_private is None:
        return False
    if not (config.zalo_app_id and config.zalo_app_secret):  # Zalo would refuse every OA
        log.warning("scheduled token refresh skipped: ZALO_APP_ID or ZALO_APP_SECRET unset")
        return False
    lock = runtime.redis.lock(OA_REFRESH_LOCK, timeout=TOKEN_REFRESH_EVERY, blocking=False)
    if not lock.acquire():
        return False
    with ZaloClient.from_config(runtime.config) as client:
        refresh_due_tokens(runtime, client)
    return True


def token_refresh_loop(runtime: Runtime, stop: threading.Event) -> None:
    """The worker's token thread: look every TOKEN_REFRESH_CHECK seconds, starting now."""
    while not stop.is_set():
        try:
            token_refresh_once(runtime)
        except Exception:  # Redis or the database is down: the next look tries again
            log.exception("scheduled token refresh failed; retrying")
        stop.wait(TOKEN_REFRESH_CHECK)


def pending_work(runtime: Runtime) -> tuple[bool, bool]:
    """(stored events wait for expansion, outbox rows wait for the relay): two reads on
    their partial indexes, no write lock and no Redis lock, so an idle worker costs next to
    nothing (before, every pass took the relay's Redis lock and the write lock)."""
    with runtime.engine.connect() as conn:
        row = conn.execute(_PENDING_WORK).one()
    return bool(row[0]), bool(row[1])


# Built once: building it took more of an idle worker's CPU than running it (issue 15).
_PENDING_WORK = select(
    exists().where(
        EVENTS.c.processed_at.is_(None),
        EVENTS.c.transit_lost_at.is_(None),
        EVENTS.c.expand_failed_at.is_(None),
    ),
    exists().where(OUTBOX.c.enqueued_at.is_(None)),
)


def relay_pass(runtime: Runtime) -> bool:
    """Expand stored events into tips, dispatch them and send the replies (the fast path,
    tipline.jobs.fastpath), and drain the rest of the outbox into RQ, each only when the
    cheap check says there is work; whether there was."""
    events, jobs = pending_work(runtime)
    if events:
        expanders = runtime.config.expanders
        while expand_pending(runtime, EXPAND_BATCH, expanders) == EXPAND_BATCH:
            pass
        jobs = True  # expansion queued dispatches
    if jobs:
        # One batch of each per pass: under a backlog, acknowledgements keep pace with
        # dispatches instead of waiting for the whole backlog to be dispatched.
        dispatch_batch(runtime)
        send_batch(runtime)
        drain(runtime.sessions, runtime.redis, exclude=FAST_KINDS)
    return events or jobs


def relay_loop(runtime: Runtime, stop: threading.Event) -> None:
    """Expand stored events into tips and drain the outbox when there is work (woken by the
    doorbell, checking every IDLE_CHECK anyway); start and destroy transit epochs when due
    (tipline.transit); sweep now and then, and apply retention every ten minutes
    (tipline.retention)."""
    sweep_every = max(runtime.config.sweep_after.total_seconds() / 2, 1.0)
    next_sweep = time.monotonic() + sweep_every
    next_retention = time.monotonic()
    next_rotation = time.monotonic()
    next_checkpoint = time.monotonic()
    while not stop.is_set():
        busy = False
        try:
            if time.monotonic() >= next_rotation:
                runtime.transit.rotate()
                next_rotation = time.monotonic() + ROTATE_EVERY
            busy = relay_pass(runtime)
            if time.monotonic() >= next_sweep:
                sweep(runtime.sessions, runtime.redis, runtime.config.sweep_after)
                next_sweep = time.monotonic() + sweep_every
            if time.monotonic() >= next_retention:
                next_retention = time.monotonic() + RETENTION_EVERY
                retention_once(runtime)
            if time.monotonic() >= next_checkpoint:
                next_checkpoint = time.monotonic() + CHECKPOINT_CHECK
                checkpoint_once(runtime)
            if busy:
                stop.wait(RELAY_INTERVAL)
            else:
                wait_for_work(runtime.redis, IDLE_CHECK)
        except Exception:  # Redis or the database is down: keep trying, the rows wait
            log.exception("outbox relay failed; retrying")
            stop.wait(1.0)


# Set once load_routing_data has built the place index and read the ward boundaries.
ROUTING_READY = threading.Event()


def load_routing_data(runtime: Runtime) -> None:
    """Build the place index and read the ward boundaries (once per process, about 1.5 s,
    far more under load): in a thread of its own when the worker starts, so that the first
    tip after a start does not wait for them (it waited 1.4 s on an idle machine, 14 s under
    load) and the worker takes its queues at once. A dispatch that comes during the build
    waits for it (tipline.routing.places.gazetteer), never builds a second."""
    try:
        boundaries_from_config(runtime.config.ward_boundaries)
        gazetteer()
    except Exception:  # the first dispatch tries again and says why
        log.exception("the place index could not be built at start")
        return
    ROUTING_READY.set()


def wait_for_redis(runtime: Runtime, stop: threading.Event | None = None) -> None:
    """Return once Redis answers; log that it is awaited once a minute, not every try.

    Started before Redis (a machine booting, `docker compose up`, the demo), RQ would log
    "could not connect to Redis" every few seconds until it came.
    """
    waiting_since: float | None = None
    next_log = 0.0
    delay = 0.2
    while stop is None or not stop.is_set():
        try:
            runtime.redis.ping()
        except AuthenticationError:  # a wrong password does not mend by waiting: say so
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            now = time.monotonic()
            if waiting_since is None:
                waiting_since = now
            if now >= next_log:
                log.warning("waiting for Redis (%s)", type(exc).__name__)
                next_log = now + REDIS_WAIT_LOG_EVERY
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        if waiting_since is not None:
            log.warning("Redis answers after %.0f s; starting", time.monotonic() - waiting_since)
        return


def heartbeat_loop(runtime: Runtime, stop: threading.Event, name: str) -> None:
    """Every HEARTBEAT_EVERY seconds: this worker is alive (tipline.health counts them)."""
    while not stop.is_set():
        try:
            now = time.time()
            with runtime.redis.pipeline() as pipe:
                pipe.zadd(HEARTBEATS, {name: now})
                pipe.zremrangebyscore(HEARTBEATS, "-inf", now - 10 * HEARTBEAT_STALE)
                pipe.execute()
        except RedisError:  # the relay loop and RQ say so; the health check sees no beat
            pass
        stop.wait(HEARTBEAT_EVERY)


def live_workers(redis: Any, now: float | None = None) -> int:
    """How many workers beat within HEARTBEAT_STALE seconds."""
    moment = time.time() if now is None else now
    return int(redis.zcount(HEARTBEATS, moment - HEARTBEAT_STALE, "+inf"))


def _quiet_reconnects() -> None:
    """RQ logs "could not connect to Redis" every 2 s of an outage (and its command thread
    again), the relay loop its failure every pass: one line a minute of each says the same."""
    for logger, words in (
        (logging.getLogger("rq.worker"), "could not connect to Redis"),
        (log, "outbox relay failed"),  # the relay loop, every 1.1 s while Redis is away
    ):
        if not any(isinstance(f, RepeatFilter) and f.prefix == words for f in logger.filters):
            logger.addFilter(RepeatFilter(words))


def run_worker(
    runtime: Runtime, queues: list[str] | None = None, *, burst: bool = False, relay: bool = True
) -> bool:
    names = queues or list(QUEUE_NAMES)
    _quiet_reconnects()
    wait_for_redis(runtime)
    # Before anything else: a key store that persists (or none reachable) stops the worker
    # with a clear error, instead of a relay loop that logs it every pass (tipline.keystore).
    _ = runtime.keystore
    runtime.transit.rotate()
    threading.Thread(target=load_routing_data, args=(runtime,), daemon=True).start()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    if relay and not burst:
        for target in (relay_loop, token_refresh_loop):
            thread = threading.Thread(target=target, args=(runtime, stop), daemon=True)
            thread.start()
            threads.append(thread)
    if not burst:
        name = f"{socket.gethostname()}:{os.getpid()}"
        beat = threading.Thread(target=heartbeat_loop, args=(runtime, stop, name), daemon=True)
        beat.start()
        threads.append(beat)
    elif relay:
        while expand_pending(runtime) == EXPAND_BATCH:
            pass
        drain(runtime.sessions, runtime.redis)
    # RQ's own client: RQ waits up to 405 s for a job on one connection and sets its pool's
    # read timeout to match, but only for connections made after it starts. Sharing the
    # runtime's pool, the threads above had already filled it with redis-py's 5 s connections:
    # every idle BLPOP on one "could not connect to Redis" (the demo's 41 lines), and a job
    # waited for RQ's back-off.
    rq_redis = connect(runtime.config.redis_url, runtime.config.data_dir)
    try:
        while True:
            worker = TiplineWorker(names, connection=rq_redis)
            try:
                return bool(
                    worker.work(burst=burst, with_scheduler=not burst, logging_level="WARNING")
                )
            except (RedisConnectionError, RedisTimeoutError) as exc:
                if burst or isinstance(exc, AuthenticationError):
                    raise
                # RQ gives up when Redis goes away at some moments (starting its scheduler,
                # its maintenance): wait for Redis and start again, rather than exit and
                # take the demo (or a worker without a supervisor) down with it.
                log.warning("Redis went away (%s); the worker waits for it", type(exc).__name__)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing runs: stop at once
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                wait_for_redis(runtime)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
