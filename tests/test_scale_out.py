"""Scale-out on PostgreSQL (issue 15): the pipeline and the officers' work on tips lock the rows
they touch, not the database, so a slow transaction on one tip holds up nobody else's.

Before, every write transaction took one advisory lock: held by hand for 20 s, it froze the
whole pipeline, and with 4 workers sessions waited on it 48 % of their time. PostgreSQL only
(the SQLite pass leaves this file out: SQLite has one writer by design, tipline.db).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.zalo_events import event, signed_headers
from tipline import audit
from tipline.audit import verify_chain
from tipline.db import write_session
from tipline.intake.expansion import expand_pending
from tipline.jobs.fastpath import dispatch_batch, send_batch
from tipline.models import Delivery, Direction, Message, Tip
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

# Liveness, not speed: a pipeline pass waiting on the held transaction would wait for the
# lock timeout (30 s); done at all within this means it did not wait.
PATIENCE = 15.0


def post(client: FlaskClient, user: str, msg_id: str) -> None:
    raw = event(text="Có người buôn bán ma túy ở hẻm 5", msg_id=msg_id, user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_an_officers_open_transaction_on_one_tip_does_not_stop_the_pipeline(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    post(client, "900000000000000001", "first")
    expand_pending(runtime)
    dispatch_batch(runtime)
    send_batch(runtime)
    holding, release = threading.Event(), threading.Event()

    def officer_at_work() -> None:
        # An officer's action on the first tip, as triage holds it: the tip's row locked and
        # an audit event written, and then slow (a long request, a stalled client).
        with write_session(runtime.sessions, row_locks=True) as db, audit.deferred(db):
            tip = db.scalars(select(Tip).with_for_update()).one()
            tip.priority = "high"
            audit.record(db, action=audit.actions.PRIORITY_CHANGE, object_id=tip.public_id)
            holding.set()
            release.wait(60)

    officer, officer_errors = in_thread(officer_at_work)
    assert holding.wait(10)
    try:
        post(client, "900000000000000002", "second")

        def pipeline() -> None:
            assert expand_pending(runtime) == 1
            assert dispatch_batch(runtime) == 1
            assert send_batch(runtime) == 1

        worker, worker_errors = in_thread(pipeline)
        worker.join(PATIENCE)
        finished = not worker.is_alive()
    finally:
        release.set()
    officer.join(30)
    worker.join(60)
    assert officer_errors == [] and worker_errors == []
    assert finished, "the pipeline waited for an officer's transaction on another tip"
    with runtime.sessions() as session:
        tips = session.scalars(select(Tip).order_by(Tip.id)).all()
        assert [t.dispatched_at is not None for t in tips] == [True, True]
        assert tips[0].priority == "high"
        acks = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND))
        assert {m.delivery for m in acks} == {Delivery.SENT}
        assert verify_chain(session).ok


def test_retention_neither_stops_the_pipeline_nor_shreds_a_tip_being_worked_on(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    """Retention ran under the exclusive write lock, loading every closed tip: the pipeline
    waited for it. Now it locks the expired tips it shreds, skipping one an officer holds
    (shredded at the next pass)."""
    from datetime import timedelta

    from tipline.models import TipStatus, utcnow
    from tipline.retention import retention_pass

    for n in range(2):
        post(client, f"90000000000000001{n}", f"old-{n}")
    expand_pending(runtime)
    dispatch_batch(runtime)
    now = utcnow()
    with runtime.sessions() as session, session.begin():
        for tip in session.scalars(select(Tip)):
            tip.status, tip.closed_at = TipStatus.RESOLVED, now - timedelta(days=400)
    holding, release = threading.Event(), threading.Event()

    def officer_at_work() -> None:
        with write_session(runtime.sessions, row_locks=True) as db, audit.deferred(db):
            db.scalars(select(Tip).order_by(Tip.id).limit(1).with_for_update()).one()
            holding.set()
            release.wait(60)

    officer, officer_errors = in_thread(officer_at_work)
    assert holding.wait(10)
    try:
        results: list[tuple[int, int]] = []
        worker, worker_errors = in_thread(
            lambda: results.append(retention_pass(runtime.sessions, runtime.config, now))
        )
        worker.join(PATIENCE)
        finished = not worker.is_alive()
    finally:
        release.set()
    officer.join(30)
    worker.join(60)
    assert officer_errors == [] and worker_errors == []
    assert finished, "retention waited for an officer's transaction"
    assert results == [(0, 1)]  # the tip being worked on was skipped
    assert retention_pass(runtime.sessions, runtime.config, now) == (0, 1)  # and shredded now
    with runtime.sessions() as session:
        assert all(t.shredded_at is not None for t in session.scalars(select(Tip)))
        assert verify_chain(session).ok
