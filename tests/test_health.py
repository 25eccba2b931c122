"""Health per tier tells the truth: liveness, readiness, and the pipeline (tipline.health).

Each state an operator must see: no worker, a dead worker, an unmigrated database, Redis down
under the intake tier (which still takes tips), an event or a tip stuck in the pipeline, and
quarantined events.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.conftest import free_port
from tests.databases import Databases
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config
from tipline.jobs.worker import HEARTBEAT_STALE, HEARTBEATS
from tipline.models import InboundEvent, Tip, utcnow
from tipline.runtime import Runtime


def answer(client: FlaskClient, path: str) -> tuple[int, dict[str, Any]]:
    response = client.get(path)
    assert response.json is not None
    return response.status_code, dict(response.json)


def test_the_staff_tier_is_not_ready_without_a_live_worker(
    client: FlaskClient, runtime: Runtime
) -> None:
    assert answer(client, "/livez") == (200, {"status": "alive"})
    status, ready = answer(client, "/readyz")
    assert status == 503 and ready["status"] == "not ready"
    assert "no live worker: start tipline worker" in ready["reasons"]
    status, health = answer(client, "/healthz")
    assert status == 503 and health["workers"] == 0 and health["status"] == "not ready"
    # A worker that stopped beating (killed) is not counted either.
    runtime.redis.zadd(HEARTBEATS, {"killed-worker": time.time() - HEARTBEAT_STALE - 5})
    assert answer(client, "/readyz")[0] == 503


def test_the_staff_tier_is_ready_with_a_worker_and_everything_at_head(
    client: FlaskClient, worker_beating: None
) -> None:
    status, ready = answer(client, "/readyz")
    assert status == 200, ready
    assert ready["tier"] == "staff" and ready["migrations"] == "at head"
    status, health = answer(client, "/healthz")
    assert status == 200 and health["status"] == "ok", health
    # CONTRACT.md's fields are all there.
    assert health["database"] == "ok" and health["redis"] == "ok" and health["workers"] == 1
    assert set(health["queues"]) == {"dispatch", "outbound", "media"}
    assert health["pipeline"]["undispatched_tips"] == 0


def test_an_unmigrated_database_is_not_ready(
    config: Config, databases: Databases, worker_beating: None, runtime: Runtime
) -> None:
    empty = databases.create()
    try:
        for kinds in ({}, {"staff_ui": False}):
            app = create_app(config.with_overrides(database_url=empty), **kinds)
            status, ready = answer(app.test_client(), "/readyz")
            assert status == 503 and ready["migrations"] == "not migrated"
            assert "database not migrated to head: run tipline db upgrade" in ready["reasons"]
            app.extensions["tipline"].engine.dispose()
    finally:
        databases.drop(empty)


def test_the_intake_tier_stays_ready_with_redis_down_and_still_takes_tips(
    config: Config, runtime: Runtime
) -> None:
    down = config.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down, staff_ui=False)
    app.extensions["tipline"].engine = runtime.engine  # this test's database
    client = app.test_client()
    status, ready = answer(client, "/readyz")
    assert status == 200, ready
    assert ready["tier"] == "intake" and ready["redis"] == "not needed by this tier"
    status, health = answer(client, "/healthz")  # reported there, and still healthy
    assert status == 200 and health["redis"].startswith("error: "), health
    raw = event(text="Redis đang hỏng nhưng tin vẫn được nhận", msg_id="health-redis-down")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    with runtime.sessions() as db:
        assert db.scalars(select(InboundEvent)).one().sealed_event is not None
    # The staff tier with the same Redis down is not ready.
    staff = create_app(down)
    staff.extensions["tipline"].engine = runtime.engine
    status, ready = answer(staff.test_client(), "/readyz")
    assert status == 503 and "redis unreachable" in ready["reasons"]


def test_a_stuck_pipeline_is_reported_with_its_reason(
    client: FlaskClient, runtime: Runtime, worker_beating: None, units: dict[str, str]
) -> None:
    from tests.conftest import expand

    raw = event(text="Tin này sẽ bị kẹt", msg_id="health-stuck")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert answer(client, "/healthz")[0] == 200  # a fresh event is not stuck
    long_ago = utcnow() - timedelta(hours=1)
    with runtime.sessions() as db, db.begin():
        db.execute(update(InboundEvent).values(received_at=long_ago))
    status, health = answer(client, "/healthz")
    assert status == 503 and health["status"] == "degraded"
    assert health["pipeline"]["oldest_unexpanded_seconds"] >= 3600 - 5
    assert any("waited" in r and "expansion" in r for r in health["reasons"])
    assert answer(client, "/readyz")[0] == 200  # officers can still work: ready, not healthy

    expand(runtime)  # the event becomes a tip, never dispatched (no dispatch job runs)
    with runtime.sessions() as db, db.begin():
        db.execute(update(Tip).values(created_at=long_ago))
    status, health = answer(client, "/healthz")
    assert status == 503 and health["pipeline"]["undispatched_tips"] == 1
    assert any("dispatch" in r for r in health["reasons"]), health
    # Nothing of the tip is in the answer: counts and ages only.
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        assert tip.public_id not in str(health) and tip.receipt_code not in str(health)


def test_quarantined_events_make_the_health_degraded(
    client: FlaskClient, worker_beating: None, units: dict[str, str]
) -> None:
    raw = event(text="x" * 21_000, msg_id="health-quarantine")  # over what Tipline reads
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    status, health = answer(client, "/healthz")
    assert status == 503 and health["pipeline"]["quarantined_last_day"] == 1
    assert "events quarantined in the last 24 h: see /admin/zalo-events" in health["reasons"]
