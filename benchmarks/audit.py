"""Audit chain: verification throughput over 1,000,000 events, and the cost of one event.

1. Builds a database (SQLite in a temporary directory, or the empty database that
   ``--database-url`` names, e.g. PostgreSQL) with ``--events`` chained events (written in
   bulk with the same canonical form and links as ``record()``), then times ``verify_chain``
   over all of them.
   Baseline, same run: the bare hash links alone (``keys.chain_hash`` over the prepared
   canonical strings), the floor for any verifier of this chain. Target ≥ 200,000 events/s.
2. Times a small action (one UPDATE in its own transaction, committed) ``--actions`` times
   without and with its ``record()`` event, interleaved, on that same large table. Target: the
   event adds ≤ 1 ms at p95.

Last line: one JSON object; ``ratio`` = verification rate / bare hashing rate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import make_url

from keys import chain_hash
from tipline.audit import actions, record, verify_chain
from tipline.audit.chain import CHAINED, TIME_FORMAT, canonical
from tipline.db import make_engine, make_session_factory
from tipline.migrate import upgrade
from tipline.models import Officer, Unit
from tipline.models.audit_head import GENESIS_HASH

ACTIONS = [actions.TIP_OPEN, actions.STATUS_CHANGE, actions.TIP_RECEIVED, actions.LOGIN]


def build(url: str, n: int) -> list[str]:
    """Write ``n`` chained events; return their canonical strings (for the baseline)."""
    if url.startswith("sqlite"):
        return _build_sqlite(Path(url.removeprefix("sqlite:///")), n)
    return _build_postgresql(url, n)


def _chained(n: int) -> Iterator[tuple[tuple[object, ...], str]]:
    """Each event's row (seq, chained values, hash) and canonical string."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    previous = GENESIS_HASH
    for seq in range(1, n + 1):
        action = ACTIONS[seq % len(ACTIONS)]
        system = action == actions.TIP_RECEIVED
        values = [
            f"ev{seq:014d}",
            (start + timedelta(milliseconds=37 * seq)).strftime(TIME_FORMAT),
            None if system else f"officer{seq % 200:08d}",
            None if system else f"canbo{seq % 200}",
            None if system else "officer",
            "v2025:32134" if seq % 3 else "v2025:96",
            action,
            f"tip{seq // 5:013d}",
            "ok",
            None if system else f"10.0.{seq % 7}.{seq % 250}",
            '{"status":"verifying"}' if action == actions.STATUS_CHANGE else None,
        ]
        text = canonical(seq, values)
        previous = chain_hash(previous, text)
        yield (seq, *values, previous), text


BENCH_UNIT = (
    "INSERT INTO units (public_id, code, name, level, created_at) VALUES "
    "('benchunit000000', 'bench:1', 'Bench', 'other', '2026-01-01 00:00:00.000000')"
)


def _build_sqlite(path: Path, n: int) -> list[str]:
    db = sqlite3.connect(path)
    texts: list[str] = []
    batch: list[tuple[object, ...]] = []
    marks = ", ".join("?" * (len(CHAINED) + 2))
    sql = f"INSERT INTO audit_events (seq, {', '.join(CHAINED)}, hash) VALUES ({marks})"  # noqa: S608
    for row, text in _chained(n):
        texts.append(text)
        batch.append(row)
        if len(batch) == 50_000:
            db.executemany(sql, batch)
            batch.clear()
    if batch:
        db.executemany(sql, batch)
    db.execute("UPDATE audit_head SET seq = ?, hash = ?", (n, row[-1]))
    db.execute(BENCH_UNIT)
    db.commit()
    db.close()
    return texts


def _build_postgresql(url: str, n: int) -> list[str]:
    """COPY the events in, as the application's role (INSERT is all it may do to them)."""
    import psycopg

    parsed = make_url(url)
    texts: list[str] = []
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
    ) as db:
        db.execute("SET TIME ZONE 'UTC'")  # the canonical times are UTC
        columns = ", ".join(("seq", *CHAINED, "hash"))
        with db.cursor().copy(f"COPY audit_events ({columns}) FROM STDIN") as copy:
            for row, text in _chained(n):
                texts.append(text)
                copy.write_row(row)
        db.execute("UPDATE audit_head SET seq = %s, hash = %s", (n, row[-1]))
        db.execute(BENCH_UNIT)
        db.execute("ANALYZE")
    return texts


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=2_000)
    parser.add_argument(
        "--database-url",
        help="an empty database to migrate and fill (default: SQLite in a temporary directory)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tipline-audit-bench-"))
    try:
        url = args.database_url or f"sqlite:///{tmp / 'audit.db'}"
        upgrade(url)
        t0 = time.perf_counter()
        texts = build(url, args.events)
        print(f"built {args.events} chained events in {time.perf_counter() - t0:.1f} s", flush=True)

        t0 = time.perf_counter()
        previous = GENESIS_HASH
        for text in texts:
            previous = chain_hash(previous, text)
        hash_s = time.perf_counter() - t0
        del texts

        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions() as session:
            t0 = time.perf_counter()
            result = verify_chain(session)
            verify_s = time.perf_counter() - t0
        if not result.ok or result.checked != args.events:
            print(f"!!! verification failed: {result.describe()}")
            return 1
        verify_rate = args.events / verify_s
        hash_rate = args.events / hash_s
        print(
            f"verify_chain      {verify_rate:12,.0f} events/s ({verify_s:.2f} s for "
            f"{args.events:,}; target ≥ 200,000)"
        )
        print(f"bare chain_hash   {hash_rate:12,.0f} events/s (baseline)")

        actor = Officer(public_id="benchofficer0000", username="canbo.bench", role="officer")
        plain: list[float] = []
        audited: list[float] = []
        record_only: list[float] = []
        for i in range(args.actions):
            for with_event in (i % 2 == 0, i % 2 == 1):
                t0 = time.perf_counter()
                with sessions() as session, session.begin():
                    session.execute(
                        update(Unit).where(Unit.code == "bench:1").values(name=f"Bench {i}")
                    )
                    if with_event:
                        r0 = time.perf_counter()
                        record(
                            session,
                            action=actions.STATUS_CHANGE,
                            actor=actor,
                            object_id=f"tip{i:013d}",
                            client_address="10.0.0.1",
                            detail={"status": "in_progress"},
                        )
                        record_only.append(time.perf_counter() - r0)
                (audited if with_event else plain).append(time.perf_counter() - t0)
        with sessions() as session:
            assert verify_chain(session).ok
        engine.dispose()
        p95_plain = percentile(plain, 95) * 1000
        p95_audited = percentile(audited, 95) * 1000
        p95_record = percentile(record_only, 95) * 1000
        added_p95 = p95_audited - p95_plain
        print(
            f"action p95: {p95_plain:.3f} ms without its event, {p95_audited:.3f} ms with it; "
            f"added {added_p95:.3f} ms (record() alone p95 {p95_record:.3f} ms; "
            "target ≤ 1 ms)"
        )
        print(
            json.dumps(
                {
                    "benchmark": "audit",
                    "events": args.events,
                    "verify_events_per_s": round(verify_rate),
                    "baseline_chain_hash_per_s": round(hash_rate),
                    "ratio": round(verify_rate / hash_rate, 3),
                    "target_verify_events_per_s": 200_000,
                    "action_p50_ms": round(percentile(plain, 50) * 1000, 3),
                    "action_p95_ms": round(p95_plain, 3),
                    "audited_action_p50_ms": round(percentile(audited, 50) * 1000, 3),
                    "audited_action_p95_ms": round(p95_audited, 3),
                    "event_added_p95_ms": round(added_p95, 3),
                    "record_call_p95_ms": round(p95_record, 3),
                    "target_event_p95_ms": 1.0,
                    "database": make_url(url).get_backend_name(),
                }
            )
        )
        ok = verify_rate >= 200_000 and added_p95 <= 1.0
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
