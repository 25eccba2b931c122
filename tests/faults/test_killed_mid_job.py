"""Workers SIGKILLed mid-job: the job runs again within seconds, and a send is not repeated.

The dead worker leaves its RQ job "started". RQ itself would give up on it only after the
job's timeout plus a minute, at a worker's next ten-minute maintenance; until then the sweeper
skipped the job as active. It now sees that the worker that started it is dead and queues it
again (tipline.jobs.relay.enqueue_now).

Determinism: the test holds the tip's row lock, so the dispatch job is certainly blocked in
its claim when the worker dies.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from flask.testing import FlaskClient
from rq.job import Job, JobStatus
from sqlalchemy import create_engine, select, text

from tests.conftest import expand
from tests.faults.cluster import Cluster
from tests.zalo_events import event, signed_headers
from tipline.config import Config
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import (
    Delivery,
    Direction,
    Message,
    OutboxEntry,
    Tip,
)
from tipline.outbox import (
    JOB_SERIALIZER,
    job_id,
)
from tipline.runtime import Runtime

SWEEP_AFTER = 5  # the cluster's TIPLINE_SWEEP_AFTER_SECONDS
DEADLINE = 45.0  # RQ alone: 180 s (dispatch timeout 120 + 60) then up to 10 minutes


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def test_dispatch_killed_mid_job_is_run_again(
    make_cluster: Callable[[int], Cluster],
    client: FlaskClient,
    runtime: Runtime,
    config: Config,
) -> None:
    raw = event(msg_id="killed-mid-job-0001")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip.public_id)).one()
    runtime.engine.dispose()

    engine = create_engine(config.database_url)
    cluster = make_cluster(1)
    try:
        with engine.connect() as blocker:
            blocker.execute(
                text("SELECT id FROM tips WHERE public_id = :tip FOR UPDATE"), {"tip": tip}
            )
            cluster.start()
            job = job_id("dispatch", tip)

            def started() -> bool:
                found = Job.fetch_many(
                    [job], connection=runtime.redis, serializer=JOB_SERIALIZER
                )[0]
                if found is not None and found.get_status() == JobStatus.STARTED:
                    return True
                # The relay's fast path (tipline.jobs.fastpath) claims the dispatch itself.
                with engine.connect() as conn:
                    claimed = conn.execute(
                        select(OutboxEntry.enqueued_at).where(
                            OutboxEntry.job == "dispatch", OutboxEntry.ref == tip
                        )
                    ).scalar_one_or_none()
                return claimed is not None

            wait_for(started, 30, "the dispatch started (an RQ job, or the relay's claim)")
            time.sleep(0.5)  # well inside the claim, waiting for the row lock
            cluster.kill_worker(0)
            blocker.rollback()

        def dispatched() -> bool:
            with engine.connect() as conn:
                return (
                    conn.execute(select(Tip.dispatched_at).where(Tip.public_id == tip)).scalar_one()
                    is not None
                )

        took = wait_for(dispatched, DEADLINE, "the tip dispatched after the kill")
        print(f"KILLED_MID_JOB dispatched {took:.1f} s after the kill")
        assert [e.killed_by_test for e in cluster.exits] == [True]
    finally:
        engine.dispose()


def test_send_killed_after_zalo_took_it_is_not_sent_twice(
    make_cluster: Callable[[int], Cluster],
    client: FlaskClient,
    runtime: Runtime,
    config: Config,
) -> None:
    """Killed while recording a send Zalo accepted: the retry records it, sends nothing more.

    The test holds the audit chain's head, so ``_finish`` (which audits the delivery) waits
    after Zalo answered; the worker dies there. Without the Redis mark the retry would send
    the acknowledgement a second time.
    """
    raw = event(msg_id="killed-mid-send-0001")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as session:
        tip, receipt = session.execute(select(Tip.public_id, Tip.receipt_code)).one()
    assert dispatch_tip(tip) == "dispatched"  # queues the acknowledgement's send job
    with runtime.sessions() as session:
        message = session.scalars(
            select(Message.public_id).where(Message.direction == Direction.OUTBOUND)
        ).one()
    runtime.engine.dispose()

    engine = create_engine(config.database_url)
    cluster = make_cluster(1)

    def copies() -> int:
        calls = httpx.get(f"{cluster.base_url}/_sim/messages", timeout=10).json()
        return sum(1 for c in calls if c["error"] == 0 and receipt in (c["text"] or ""))

    try:
        with engine.connect() as blocker:
            blocker.execute(text("SELECT * FROM audit_head FOR UPDATE"))
            cluster.start()
            wait_for(lambda: copies() == 1, 30, "Zalo took the acknowledgement")
            time.sleep(0.5)  # the worker now waits for the audit head in _finish
            cluster.kill_worker(0)
            blocker.rollback()

        def recorded() -> bool:
            with engine.connect() as conn:
                delivery = conn.execute(
                    select(Message.delivery).where(Message.public_id == message)
                ).scalar_one()
            return bool(delivery == Delivery.SENT)

        took = wait_for(recorded, DEADLINE, "the send recorded after the kill")
        print(f"KILLED_MID_SEND recorded {took:.1f} s after the kill")
        assert copies() == 1
        assert [e.killed_by_test for e in cluster.exits] == [True]
    finally:
        engine.dispose()
