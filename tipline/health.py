"""Health per tier: liveness, readiness, and the operator's full view (`/healthz`).

Three routes on every tier (docs/operations.md, "Giám sát / Monitoring"):

- ``GET /livez``: 200 while the process answers. Nothing else is asked: a restart would not
  mend a database or Redis that is down.
- ``GET /readyz``: 200 when this tier can do its job, else 503 with the reasons. What a load
  balancer asks.

  - intake tier: it can store a webhook: the database answers, is migrated to head, and a
    transit epoch exists (the webhook seals to it). Redis is not asked by /readyz (only
    reported by /healthz), never required: the
    webhook never touches it (docs/architecture.md), so an intake tier stays in the balancer
    exactly while it still accepts tips.
  - public tier: the same, and Redis (the web form's proof of work and limits live there).
  - staff tier: the database answers at head, Redis answers, and at least one worker beat
    within the last ``HEARTBEAT_STALE`` seconds (tipline.jobs.worker): without one no tip is
    expanded, dispatched or acknowledged.

- ``GET /healthz`` (CONTRACT.md): the readiness above plus the pipeline, read from the tables:
  the oldest stored event not yet expanded, the oldest tip not yet dispatched (older than
  ``TIPLINE_STUCK_AFTER_SECONDS``: stuck), events waiting for key holders, and quarantined
  events of the last day. JSON with ``database``, ``redis``, ``workers``, ``queues`` (depths),
  ``migrations``, ``pipeline``, ``reasons`` and ``status``: ``ok`` (200), ``degraded`` (ready,
  but the pipeline is stuck or events were quarantined: 503), ``not ready`` (503).

No answer carries a tip id or anything of an informant: counts, ages and states only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from rq import Worker
from sqlalchemy import Engine, text

from tipline.jobs.worker import live_workers
from tipline.metrics import pipeline_state
from tipline.outbox import QUEUE_NAMES, job_queue
from tipline.runtime import Runtime, app_runtime

blueprint = Blueprint("health", __name__)

@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The revisions this code expects the database at (alembic's heads)."""
    from alembic.script import ScriptDirectory

    from tipline.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(script.get_heads())


def _tier() -> str:
    """``staff`` (the staff UI is mounted), ``public`` (the web form alone) or ``intake``."""
    if "admin" in current_app.blueprints:
        return "staff"
    return "public" if "web_intake" in current_app.blueprints else "intake"


def check_database(engine: Engine) -> tuple[dict[str, Any], list[str]]:
    """``database`` and ``migrations`` entries, and what makes the tier not ready."""
    report: dict[str, Any] = {}
    reasons: list[str] = []
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                current = {
                    str(row[0])
                    for row in connection.execute(text("SELECT version_num FROM alembic_version"))
                }
            except Exception:  # no alembic_version table: never migrated
                current = set()
        report["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what operators look at
        report["database"] = f"error: {type(exc).__name__}"
        reasons.append("database unreachable")
        return report, reasons
    heads = migration_heads()
    if current == heads:
        report["migrations"] = "at head"
    else:
        report["migrations"] = "not migrated" if not current else "behind"
        reasons.append("database not migrated to head: run tipline db upgrade")
    return report, reasons


def check_transit(runtime: Runtime) -> list[str]:
    from tipline.transit import NoTransitKey

    try:
        runtime.transit.public()
    except NoTransitKey:
        return ["no transit epoch yet: no worker has started"]
    except Exception:  # the database check names the cause
        return []
    return []


def check_redis(runtime: Runtime) -> dict[str, Any]:
    report: dict[str, Any] = {}
    try:
        redis = runtime.redis
        redis.ping()
        report["redis"] = "ok"
        report["workers"] = live_workers(redis)
        report["rq_workers"] = len(Worker.all(connection=redis))
        report["queues"] = {name: job_queue(name, redis).count for name in QUEUE_NAMES}
    except Exception as exc:
        report["redis"] = f"error: {type(exc).__name__}"
        report["workers"] = None
        report["queues"] = None
    return report


def pipeline_problems(state: dict[str, Any], stuck_after: float) -> list[str]:
    reasons = []
    expand_age = state["oldest_unexpanded_seconds"]
    if expand_age is not None and expand_age > stuck_after:
        reasons.append(f"pipeline stuck: an event has waited {expand_age:.0f} s for expansion")
    dispatch_age = state["oldest_undispatched_seconds"]
    if dispatch_age is not None and dispatch_age > stuck_after:
        reasons.append(f"pipeline stuck: a tip has waited {dispatch_age:.0f} s for dispatch")
    if state["events_waiting_for_key_holders"]:
        reasons.append("events wait for their unit's key holders to log in")
    if state["events_failed"]:
        reasons.append("events could not be expanded and were set aside: see /admin/zalo-events")
    if state["quarantined_last_day"]:
        reasons.append("events quarantined in the last 24 h: see /admin/zalo-events")
    return reasons


def readiness(
    runtime: Runtime, tier: str, *, ask_redis: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """This tier's report and what keeps it from being ready (empty: ready).

    ``ask_redis=False`` (the intake tier's /readyz): Redis is not asked at all, so an
    unreachable one cannot even slow the answer down (redis-py waits up to 5 s to connect).
    """
    report, reasons = check_database(runtime.engine)
    if report["database"] == "ok":
        reasons += check_transit(runtime)
    if ask_redis:
        report.update(check_redis(runtime))
    else:
        report["redis"] = "not needed by this tier"
    if tier != "intake" and report["redis"] != "ok":  # sessions, limits, proof of work
        reasons.append("redis unreachable")
    if tier == "staff" and report["redis"] == "ok" and not report["workers"]:
        reasons.append("no live worker: start tipline worker")
    report["tier"] = tier
    return report, reasons


@blueprint.get("/livez")
def livez() -> ResponseReturnValue:
    return jsonify({"status": "alive"}), 200


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    tier = _tier()
    report, reasons = readiness(app_runtime(), tier, ask_redis=tier != "intake")
    report["reasons"] = reasons
    report["status"] = "ready" if not reasons else "not ready"
    return jsonify(report), 503 if reasons else 200


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    runtime = app_runtime()
    report, reasons = readiness(runtime, _tier())
    problems: list[str] = []
    if report["database"] == "ok":
        try:
            state = pipeline_state(runtime)
        except Exception as exc:  # e.g. a database not migrated: readiness says so
            report["pipeline"] = f"error: {type(exc).__name__}"
        else:
            report["pipeline"] = state
            problems = pipeline_problems(state, runtime.config.stuck_after.total_seconds())
    report["reasons"] = reasons + problems
    report["status"] = "not ready" if reasons else "degraded" if problems else "ok"
    return jsonify(report), 200 if report["status"] == "ok" else 503
