"""GET /healthz: is each part of the system up, and how much work is waiting."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from rq import Worker
from sqlalchemy import text

from tipline.outbox import QUEUE_NAMES, job_queue
from tipline.runtime import app_runtime

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    runtime = app_runtime()
    report: dict[str, Any] = {}
    ok = True
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what operators look at
        ok = False
        report["database"] = f"error: {type(exc).__name__}"
    try:
        redis = runtime.redis
        redis.ping()
        report["redis"] = "ok"
        report["workers"] = len(Worker.all(connection=redis))
        report["queues"] = {name: job_queue(name, redis).count for name in QUEUE_NAMES}
    except Exception as exc:
        ok = False
        report["redis"] = f"error: {type(exc).__name__}"
    report["status"] = "ok" if ok else "degraded"
    return jsonify(report), 200 if ok else 503
