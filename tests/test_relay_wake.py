"""The relay loop idle and woken (issue 15): an idle pass takes no lock, a stored event rings.

Before, every 100 ms each worker's relay took the relay's Redis lock and the write lock and
ran two queries with nothing to do (56-59 ms of CPU a second; on PostgreSQL 70 write
transactions a second from two idle workers). Now an idle pass is two reads on the pending
indexes, and the webhook rings a doorbell (a Redis list) that idle relays wait on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import event, select

from tests.test_triage import tip_id  # noqa: F401  # the fixture: a dispatched tip
from tests.triage_helpers import login, post_form
from tests.zalo_events import event as zalo_event
from tests.zalo_events import signed_headers
from tipline.db import IMMEDIATE
from tipline.jobs.worker import IDLE_CHECK, pending_work, relay_loop, relay_pass
from tipline.models import OutboxEntry, Tip
from tipline.outbox import RELAY_WAKE, RELAY_WAKE_KEEP, wait_for_work, wake_relay
from tipline.runtime import Runtime


def lock_attempts(redis: Redis) -> int:
    """SET commands the server has run (a Redis lock is taken with SET NX)."""
    stats: dict[str, Any] = redis.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


def test_an_idle_relay_pass_takes_no_write_transaction_and_no_redis_lock(
    runtime: Runtime, redis: Redis
) -> None:
    writes: list[bool] = []

    def count(conn: Any) -> None:
        if conn.get_execution_options().get(IMMEDIATE, False):
            writes.append(True)

    event.listen(runtime.engine, "begin", count)
    try:
        sets = lock_attempts(redis)
        assert pending_work(runtime) == (False, False)
        assert relay_pass(runtime) is False
        assert lock_attempts(redis) == sets
        assert writes == []
    finally:
        event.remove(runtime.engine, "begin", count)


def test_a_stored_webhook_event_rings_the_relay_which_expands_it(
    client: FlaskClient, runtime: Runtime, redis: Redis
) -> None:
    redis.delete(RELAY_WAKE)
    assert wait_for_work(redis, 0.05) is False
    raw = zalo_event()
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert wait_for_work(redis, 5) is True
    assert pending_work(runtime) == (True, False)
    assert relay_pass(runtime) is True
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        outbox = session.scalars(select(OutboxEntry)).one()
    # Expanded, and the dispatch job handed to RQ in the same pass.
    assert outbox.ref == tip.public_id and outbox.enqueued_at is not None
    assert pending_work(runtime) == (False, False)
    # A duplicate delivery stores nothing and rings nothing.
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert wait_for_work(redis, 0.05) is False


def test_an_officers_reply_rings_the_relay_once_committed(
    client: FlaskClient,
    runtime: Runtime,
    redis: Redis,
    units: dict[str, str],
    tip_id: str,  # noqa: F811
) -> None:
    """A reply needs no webhook to be sent: its commit rings the doorbell, so it leaves at
    once rather than at an idle relay's next look (every IDLE_CHECK). A rolled-back one
    rings nothing."""
    login(client, "canbo", units["totp:canbo"])
    redis.delete(RELAY_WAKE)
    url = f"/triage/tips/{tip_id}"
    assert post_form(client, url, f"{url}/reply", {"text": "Cảm ơn, bạn ở đâu?"}).status_code == 302
    assert wait_for_work(redis, 0.05) is True
    with runtime.sessions() as session:
        queued = session.scalars(select(OutboxEntry).where(OutboxEntry.job == "send")).all()
    assert queued and queued[-1].enqueued_at is None
    redis.delete(RELAY_WAKE)
    assert post_form(client, url, f"{url}/reply", {"text": ""}).status_code == 400
    assert wait_for_work(redis, 0.05) is False


def test_the_doorbell_stays_short_with_no_relay_listening_in_one_round_trip_a_ring(
    redis: Redis,
) -> None:
    """Webhooks ring with every worker down: the list keeps RELAY_WAKE_KEEP rings, not one a
    tip; while it is short a ring is one command (a pipeline of two was a fifth of intake)."""

    def calls(command: str) -> int:
        stats: dict[str, Any] = redis.info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    redis.delete(RELAY_WAKE)
    pushes, trims = calls("lpush"), calls("ltrim")
    for _ in range(RELAY_WAKE_KEEP):
        wake_relay(redis)
    assert (calls("lpush") - pushes, calls("ltrim") - trims) == (RELAY_WAKE_KEEP, 0)
    for _ in range(RELAY_WAKE_KEEP * 2):
        wake_relay(redis)
    assert redis.llen(RELAY_WAKE) == RELAY_WAKE_KEEP
    redis.delete(RELAY_WAKE)
    wake_relay(redis)
    assert wait_for_work(redis, 0.05) is True


def test_an_idle_relay_looks_for_unrung_work_at_most_twice_in_five_seconds(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15: an idle stack took 4.2 % of a core against a 2 % target. On this 2-core
    machine each wake of a sleeping thread costs 3-10 ms of CPU (cold caches), and the relay
    woke every 2 s to look for work whose writer rang no bell (a lost ring; every writer rings).
    Now every 4 s. Not 5: the doorbell's wait must end before redis-py's 5 s read timeout, or
    every idle wait ends in an error, a reconnection and a second's pause (seen first)."""
    looks: list[str] = []
    caplog.set_level(logging.ERROR, logger="tipline.jobs.worker")

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM inbound_events" in statement and "processed_at IS NULL" in statement:
            looks.append(statement)

    stop = threading.Event()
    event.listen(runtime.engine, "before_cursor_execute", count)
    relay = threading.Thread(target=relay_loop, args=(runtime, stop))
    try:
        relay.start()
        time.sleep(5.5)
    finally:
        stop.set()
        runtime.redis.lpush(RELAY_WAKE, "stop")  # wake it from the doorbell's wait
        relay.join(10)
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert not relay.is_alive()
    assert [r.getMessage() for r in caplog.records] == []
    assert 1 <= len(looks) <= 2, f"{len(looks)} looks in 5.5 s"


def test_the_doorbells_wait_ends_before_the_clients_read_timeout(runtime: Runtime) -> None:
    """An operator's Redis URL may set a shorter ``socket_timeout`` than redis-py's 5 s: the
    idle wait (IDLE_CHECK, 4 s) must then end before it, with a quiet "no ring", not in a
    TimeoutError, a reconnection and the relay loop's one-second pause every time."""
    url = runtime.config.redis_url
    impatient = Redis.from_url(url + ("&" if "?" in url else "?") + "socket_timeout=1")
    try:
        impatient.delete(RELAY_WAKE)
        assert wait_for_work(impatient, IDLE_CHECK) is False
    finally:
        impatient.close()
