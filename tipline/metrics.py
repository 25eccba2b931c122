"""Prometheus metrics for the whole system, served on an internal port: `tipline metrics`.

One process reads the shared state at each scrape (the database, Redis, RQ) and the counters
every process keeps in Redis (tipline.counters), so one scrape target sees every tier and
worker, however many machines run them. It listens on 127.0.0.1:9108 by default and is never
published by the TLS proxy (deploy/nginx): metrics describe the service, and the service's
shape is nobody's business outside the police network.

No label carries a tip, message or attachment id, a receipt code, a username, an informant
or any text: stage and queue names, fixed reasons, Zalo's numeric error codes, OA ids (public
numbers of the police units' own accounts) and token states only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from rq import Queue
from sqlalchemy import func, select

from tipline.counters import BUCKETS, read_counter, read_histogram
from tipline.jobs.worker import live_workers
from tipline.models import InboundEvent, QuarantinedEvent, Tip, utcnow
from tipline.outbox import QUEUE_NAMES
from tipline.runtime import Runtime
from tipline.zalo.accounts import TokenState, token_states

DEFAULT_PORT = 9108
# Quarantined events count against health for this long after they arrive (tipline.health).
QUARANTINE_RECENT = timedelta(hours=24)


def pipeline_state(runtime: Runtime) -> dict[str, Any]:
    """Ages (seconds) and counts of waiting work, from the tables (no worker is asked)."""
    now = utcnow()
    with runtime.sessions() as db:
        oldest_event = db.scalar(
            select(func.min(InboundEvent.received_at)).where(
                InboundEvent.processed_at.is_(None),
                InboundEvent.transit_lost_at.is_(None),
                InboundEvent.expand_failed_at.is_(None),
            )
        )
        failed = db.scalar(
            select(func.count()).where(
                InboundEvent.processed_at.is_(None), InboundEvent.expand_failed_at.is_not(None)
            )
        )
        waiting_for_keys = db.scalar(
            select(func.count()).where(
                InboundEvent.processed_at.is_(None), InboundEvent.transit_lost_at.is_not(None)
            )
        )
        oldest_tip = db.scalar(
            select(func.min(Tip.created_at)).where(
                Tip.dispatched_at.is_(None), Tip.shredded_at.is_(None)
            )
        )
        undispatched = db.scalar(
            select(func.count()).where(Tip.dispatched_at.is_(None), Tip.shredded_at.is_(None))
        )
        quarantined = db.scalar(
            select(func.count()).where(QuarantinedEvent.received_at >= now - QUARANTINE_RECENT)
        )

    def age(moment: Any) -> float | None:
        return None if moment is None else round(max((now - moment).total_seconds(), 0.0), 1)

    return {
        "oldest_unexpanded_seconds": age(oldest_event),
        "events_waiting_for_key_holders": int(waiting_for_keys or 0),
        "events_failed": int(failed or 0),
        "oldest_undispatched_seconds": age(oldest_tip),
        "undispatched_tips": int(undispatched or 0),
        "quarantined_last_day": int(quarantined or 0),
    }


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class TiplineCollector(Collector):
    """Reads the state at each scrape; a part that cannot be read is left out and counted in
    ``tipline_scrape_errors`` (the health check says why)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        errors = 0
        for part in (self._database, self._redis, self._counters):
            try:
                yield from part()
            except Exception:  # one part down: the others still report
                errors += 1
        yield _gauge("tipline_scrape_errors", "Parts of the system this scrape could not read.",
                     errors)

    def _database(self) -> Iterator[Metric]:
        runtime = self.runtime
        with runtime.engine.connect() as db:
            stored = db.scalar(select(func.max(InboundEvent.id))) or 0
            quarantined_total = db.scalar(select(func.count()).select_from(QuarantinedEvent))
            states = token_states(db)
        intake = CounterMetricFamily(
            "tipline_intake_events",
            "Events stored by the webhook and the web form (rows of inbound_events ever made; "
            "on PostgreSQL a duplicate delivery uses a number too). rate() is the intake rate.",
        )
        intake.add_metric([], float(stored))
        yield intake
        state = pipeline_state(runtime)
        for key, doc in (
            ("oldest_unexpanded_seconds", "Age of the oldest stored event not yet expanded."),
            ("oldest_undispatched_seconds", "Age of the oldest tip not yet dispatched."),
        ):
            yield _gauge(f"tipline_pipeline_{key}", doc + " 0 when none.", state[key] or 0.0)
        yield _gauge("tipline_pipeline_undispatched_tips", "Tips not yet dispatched.",
                     state["undispatched_tips"])
        yield _gauge("tipline_events_waiting_for_key_holders",
                     "Events whose transit key was lost; a key holder's login brings them back.",
                     state["events_waiting_for_key_holders"])
        yield _gauge("tipline_events_failed",
                     "Events set aside after expansion failed on them; an admin has them tried "
                     "again (/admin/zalo-events).",
                     state["events_failed"])
        yield _gauge("tipline_quarantined_events", "Quarantined events kept (30 days).",
                     float(quarantined_total or 0))
        yield _gauge("tipline_quarantined_events_last_day",
                     "Quarantined events received in the last 24 hours.",
                     state["quarantined_last_day"])
        tokens = GaugeMetricFamily(
            "tipline_oa_token_state",
            "1 for each OA's current token state (ok, missing, expiring, error), else 0.",
            labels=["oa", "state"],
        )
        for oa_id, oa_state in states.items():
            for token_state in TokenState:
                current = 1.0 if oa_state == token_state else 0.0
                tokens.add_metric([oa_id, str(token_state)], current)
        yield tokens

    def _redis(self) -> Iterator[Metric]:
        redis = self.runtime.redis
        depth = GaugeMetricFamily("tipline_queue_depth", "Jobs waiting in each RQ queue.",
                                  labels=["queue"])
        for name in QUEUE_NAMES:
            depth.add_metric([name], float(Queue(name, connection=redis).count))
        yield depth
        yield _gauge("tipline_workers_live", "Workers that beat in the last 20 seconds.",
                     float(live_workers(redis)))

    def _counters(self) -> Iterator[Metric]:
        redis = self.runtime.redis
        for name, doc, label_names in (
            ("send_failures", "Replies Zalo did not take, by final state and Zalo error code.",
             ["delivery", "zalo_error"]),
            ("login_failures", "Refused login steps, by reason.", ["reason"]),
        ):
            family = CounterMetricFamily(f"tipline_{name}", doc, labels=label_names)
            for labels, value in read_counter(redis, name):
                family.add_metric([labels.get(n, "") for n in label_names], value)
            yield family
        latency = HistogramMetricFamily(
            "tipline_stage_seconds",
            "From a job's enqueueing to its end, by pipeline stage (dispatch, outbound, media).",
            labels=["stage"],
        )
        for entry in read_histogram(redis, "stage_seconds").values():
            buckets = [(str(bound), entry["buckets"][bound]) for bound in BUCKETS]
            buckets.append(("+Inf", entry["count"]))
            latency.add_metric([entry["labels"].get("stage", "")], buckets, entry["sum"])
        yield latency


def registry_for(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TiplineCollector(runtime))
    return registry


def serve_metrics(runtime: Runtime, host: str, port: int) -> None:
    """Serve ``/metrics`` on ``host:port`` until interrupted (`tipline metrics`)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    app = make_wsgi_app(registry_for(runtime))
    with make_server(host, port, app, handler_class=Quiet) as server:
        server.serve_forever()
