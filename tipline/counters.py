"""Event counters and latency histograms kept in Redis, for the metrics (tipline.metrics).

A counter counts across every process and machine (gunicorn recycles its workers; workers run
on several machines), so one scrape of `tipline metrics` sees the whole system. Label values
are fixed words and Zalo's numeric error codes only: never a tip, message or informant id, a
username or any text. Counting is best effort: Redis down, nothing is counted and nothing
fails (the client gives up after a fraction of a second).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "tipline:metrics:"
# Seconds: from a job's enqueueing to its end (dispatch, outbound, media).
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _label(value: object) -> str:
    """A label value: a short fixed word or a number; anything else becomes ``other``."""
    text = str(value).strip().lower()[:32]
    return text if text and set(text) <= _WORD else "other"


def _field(labels: dict[str, object]) -> str:
    return json.dumps({k: _label(v) for k, v in sorted(labels.items())}, separators=(",", ":"))


def count(redis: Redis, name: str, amount: int = 1, **labels: object) -> None:
    """Add ``amount`` to counter ``name`` with ``labels``."""
    try:
        redis.hincrby(PREFIX + name, _field(labels), amount)
    except RedisError as exc:
        log.debug("metric %s not counted (%s)", name, type(exc).__name__)


def observe(redis: Redis, name: str, seconds: float, **labels: object) -> None:
    """One observation of histogram ``name``: cumulative buckets, sum and count."""
    field = _field(labels)
    try:
        with redis.pipeline(transaction=False) as pipe:
            for bound in BUCKETS:
                if seconds <= bound:
                    pipe.hincrby(f"{PREFIX}{name}:le:{bound}", field, 1)
            pipe.hincrby(f"{PREFIX}{name}:count", field, 1)
            pipe.hincrbyfloat(f"{PREFIX}{name}:sum", field, max(seconds, 0.0))
            pipe.execute()
    except RedisError as exc:
        log.debug("metric %s not observed (%s)", name, type(exc).__name__)


def read_counter(redis: Redis, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (json.loads(field), float(value))
        for field, value in redis.hgetall(PREFIX + name).items()
    ]


def read_histogram(redis: Redis, name: str) -> dict[str, dict[str, Any]]:
    """By label set (its JSON): ``labels``, ``buckets`` (bound → count), ``sum``, ``count``."""
    out: dict[str, dict[str, Any]] = {}
    counts = redis.hgetall(f"{PREFIX}{name}:count")
    sums = redis.hgetall(f"{PREFIX}{name}:sum")
    bounds = {bound: redis.hgetall(f"{PREFIX}{name}:le:{bound}") for bound in BUCKETS}
    for raw, value in counts.items():
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        out[key] = {
            "labels": json.loads(key),
            "count": float(value),
            "sum": float(sums.get(raw, 0)),
            "buckets": {bound: float(bounds[bound].get(raw, 0)) for bound in BUCKETS},
        }
    return out
