"""The relay's fast path (issue 15): tips dispatched and acknowledged by the relay in batches,
without an RQ job per tip; RQ only for what Zalo deferred or what raised."""

from __future__ import annotations

import os

import httpx
import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from tests.conftest import COMMUNE_OA
from tests.zalo_events import event, signed_headers
from tipline.jobs.fastpath import claim
from tipline.jobs.outbound import IN_PROGRESS, SEND_LEASE, send_message
from tipline.jobs.worker import pending_work, relay_pass
from tipline.models import Delivery, Direction, Message, OutboxEntry, Tip
from tipline.outbox import job_id
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")


def post(client: FlaskClient, raw: bytes) -> None:
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200


def sim_calls(sim: str) -> list[dict[str, object]]:
    calls = httpx.get(f"{sim}/_sim/messages").json()
    assert isinstance(calls, list)
    return calls


def test_one_relay_pass_dispatches_and_acknowledges_with_no_rq_job(
    client: FlaskClient, runtime: Runtime, redis: Redis, sim: str
) -> None:
    for n in range(3):
        post(client, event(text=f"Có người buôn bán ma túy ở hẻm {n}", msg_id=f"m{n}",
                           user=f"90000000000000000{n}"))
    assert relay_pass(runtime) is True
    with runtime.sessions() as session:
        tips = session.scalars(select(Tip)).all()
        acks = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).all()
        pending = session.scalars(select(OutboxEntry).where(OutboxEntry.enqueued_at.is_(None)))
        assert list(pending) == []
    assert len(tips) == 3 and all(t.dispatched_at is not None for t in tips)
    assert len(acks) == 3 and {m.delivery for m in acks} == {Delivery.SENT}
    assert len(sim_calls(sim)) == 3  # each informant acknowledged once
    # No job went through RQ: no queue holds one and no job hash was written.
    for name in ("dispatch", "outbound"):
        assert Queue(name, connection=redis).count == 0
    for tip in tips:
        assert not redis.exists(f"rq:job:{job_id('dispatch', tip.public_id)}")
    assert pending_work(runtime) == (False, False)


def test_a_claimed_row_is_claimed_once(client: FlaskClient, runtime: Runtime) -> None:
    post(client, event())
    from tipline.intake.expansion import expand_pending

    expand_pending(runtime)
    [ref] = claim(runtime, "dispatch", 10)
    assert claim(runtime, "dispatch", 10) == []
    with runtime.sessions() as session:
        assert session.scalars(select(Tip.public_id)).one() == ref


def test_a_send_whose_lease_another_sender_holds_is_not_sent_twice(
    client: FlaskClient, runtime: Runtime, redis: Redis, sim: str
) -> None:
    post(client, event())
    from tipline.intake.expansion import expand_pending
    from tipline.jobs.fastpath import dispatch_batch

    expand_pending(runtime)
    dispatch_batch(runtime)
    with runtime.sessions() as session:
        ack = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    lease = redis.lock(SEND_LEASE.format(ack.public_id), timeout=60)
    assert lease.acquire(blocking=False)
    assert send_message(ack.public_id) == IN_PROGRESS  # an RQ copy while the relay sends
    assert sim_calls(sim) == []
    lease.release()
    assert send_message(ack.public_id) == "sent"
    assert send_message(ack.public_id) == "sent"  # final: nothing sent again
    assert len(sim_calls(sim)) == 1


def test_a_send_zalo_defers_goes_to_rq_with_its_retries(
    client: FlaskClient, runtime: Runtime, redis: Redis, sim: str
) -> None:
    httpx.post(f"{sim}/_sim/faults", json={"errors": [-32]}).raise_for_status()  # rate limited
    post(client, event())
    assert relay_pass(runtime) is True
    with runtime.sessions() as session:
        ack = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    assert ack.delivery == Delivery.QUEUED and ack.delivery_attempts == 1
    registry = ScheduledJobRegistry("outbound", connection=redis)  # type: ignore[no-untyped-call]
    assert registry.get_job_ids() == [job_id("send", ack.public_id)]


def test_a_lease_left_by_a_killed_sender_is_taken_over(
    client: FlaskClient, runtime: Runtime, redis: Redis, sim: str
) -> None:
    """A sender SIGKILLed mid-send leaves its lease; the next sender on this machine sees its
    process gone and sends at once, instead of waiting out the lease."""
    import socket
    import subprocess
    import sys

    post(client, event())
    from tipline.intake.expansion import expand_pending
    from tipline.jobs.fastpath import dispatch_batch

    expand_pending(runtime)
    dispatch_batch(runtime)
    with runtime.sessions() as session:
        ack = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    key = SEND_LEASE.format(ack.public_id)
    redis.set(key, f"{socket.gethostname()}|{dead_pid}|x", ex=60)
    assert send_message(ack.public_id) == "sent"
    assert len(sim_calls(sim)) == 1
    assert not redis.exists(key)  # released after the send
    # A live holder (this process) is respected.
    redis.set(key, f"{socket.gethostname()}|{os.getpid()}|y", ex=60)
    assert send_message(ack.public_id) == IN_PROGRESS


def test_the_sweeper_leaves_a_fresh_claim_alone_and_queues_a_stale_one(
    client: FlaskClient, runtime: Runtime, redis: Redis
) -> None:
    """A relay that claimed a dispatch is at it: the sweeper must not queue a second copy of
    the work (under a backlog it re-queued every claimed tip); a claim older than the sweep
    period is a dead relay's, and its tip goes to RQ."""
    from datetime import timedelta

    from sqlalchemy import update

    from tipline.intake.expansion import expand_pending
    from tipline.jobs.sweeper import sweep
    from tipline.models import utcnow

    post(client, event())
    expand_pending(runtime)
    [ref] = claim(runtime, "dispatch", 10)
    an_hour_ago = utcnow() - timedelta(hours=1)
    with runtime.sessions() as session, session.begin():
        session.execute(update(Tip).values(created_at=an_hour_ago))
    assert sweep(runtime.sessions, redis, timedelta(seconds=30)) == 0
    with runtime.sessions() as session, session.begin():
        session.execute(update(OutboxEntry).values(enqueued_at=an_hour_ago))
    assert sweep(runtime.sessions, redis, timedelta(seconds=30)) == 1
    assert Queue("dispatch", connection=redis).job_ids == [job_id("dispatch", ref)]


def test_a_batch_planned_before_a_change_is_applied_as_things_are_at_commit(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    """Dispatch plans outside the write lock and applies in it (tipline.jobs.dispatch): a tip
    another worker dispatched in between is left alone, and a tip planned for a unit key that
    was rotated in between is planned again for the new key."""
    from tipline.db import write_session
    from tipline.intake.expansion import expand_pending
    from tipline.jobs import dispatch as dispatching
    from tipline.models import Holder, KeyGrant, Subject, Unit
    from tipline.units import rotate_key

    for n in range(2):
        post(client, event(msg_id=f"p{n}", user=f"90000000000000001{n}"))
    expand_pending(runtime)
    refs = claim(runtime, "dispatch", 10)
    outcomes: dict[str, str] = {}
    plans = dispatching._plan(runtime, refs, outcomes)
    assert [plan.outcome for plan in plans] == ["dispatch", "dispatch"]
    # Meanwhile: an RQ retry dispatches the first tip; an admin rotates the unit's key.
    assert dispatching.dispatch_many(runtime, [refs[0]]) == {refs[0]: "dispatched"}
    with write_session(runtime.sessions) as session:
        code = session.get_one(Unit, plans[1].unit_id).code
        new_key, _moved = rotate_key(session, code)
        new_key_id = new_key.id
    stale = dispatching._apply(runtime, plans, outcomes, [])
    assert outcomes[refs[0]] == "already dispatched" and stale == [refs[1]]
    assert dispatching.dispatch_many(runtime, stale) == {refs[1]: "dispatched"}
    with runtime.sessions() as session:
        second = session.scalars(select(Tip).where(Tip.public_id == refs[1])).one()
        holders = session.scalars(
            select(KeyGrant.holder_id).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.subject_id == second.id,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
            )
        ).all()
        assert holders == [new_key_id]
        acks = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND))
        assert len(list(acks)) == 2  # one acknowledgement each, none for the stale plan


def test_one_expander_at_a_time_so_no_event_is_opened_twice(
    client: FlaskClient, runtime: Runtime, redis: Redis
) -> None:
    """Expansion reads and opens events before its write transaction (tipline.intake.
    expansion): a second worker meanwhile leaves them to the first instead of opening them
    too, and an informant's messages keep their order."""
    from tipline.intake.expansion import expand_pending, expander_lease
    from tipline.intake.recording import lane_of

    post(client, event())
    other = redis.lock(expander_lease(lane_of(COMMUNE_OA)), timeout=30)
    assert other.acquire(blocking=False)  # another worker is expanding this OA's lane
    try:
        assert expand_pending(runtime) == 0
        assert pending_work(runtime)[0] is True
    finally:
        other.release()
    assert expand_pending(runtime) == 1
