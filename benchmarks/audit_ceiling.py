"""The audit chain's ceiling on PostgreSQL: one head row, so how many audited transactions/s?

    python benchmarks/audit_ceiling.py [--seconds 5] [--threads 1,2,4,8]

Every audited write (a tip received, dispatched, opened, a reply delivered) moves the chain's
single head row (tipline.audit.chain): from ``record()`` to its commit the transaction holds
that row's lock, so audited transactions run one at a time however many workers there are.
This measures that ceiling on a throwaway cluster (tests/postgres_server.py): ``--threads``
connections, each committing transactions of one ``record()`` as fast as it can, *without*
the write advisory lock (plain transactions), so only the head row serialises them.

Batched (issue 15): the pipeline now appends a batch's events together just before commit
(``audit.deferred``: the head locked and moved once per transaction), so the same run also
measures transactions of ``--batch`` events each; ``batched_events_per_s`` and
``tips_per_s_ceiling_batched`` are what the chain allows a pipeline that batches.

Baseline, same run, same connections: a transaction of one plain INSERT of the same size (no
head). ``ratio`` = audited ÷ plain at the highest thread count; ``scaling`` = audited at the
highest thread count ÷ audited at one thread (1.0: the head binds; the plain baseline shows
what the disk and server allow). At ``per_tip_events`` = 3 audit events per tip (received,
dispatched, reply delivered), ``tips_per_s_ceiling`` is what the chain allows the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from tipline.audit import actions, deferred, record  # noqa: E402
from tipline.db import make_engine  # noqa: E402
from tipline.migrate import upgrade  # noqa: E402

PER_TIP_EVENTS = 3


def run(url: str, threads: int, seconds: float, mode: str, batch: int = 1) -> float:
    """Committed transactions per second over ``seconds`` with ``threads`` connections;
    ``mode``: "audited" (one event), "batched" (``batch`` events, deferred) or "plain"."""
    engine = make_engine(url)
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def loop(k: int) -> None:
        with engine.connect() as conn:
            start.wait()
            while not stop.is_set():
                with conn.begin():
                    if mode == "audited":
                        record(conn, action=actions.TIP_RECEIVED, object_id=f"bench{k}",
                               detail={"oa": "bench"})
                    elif mode == "batched":
                        with deferred(conn):
                            for _ in range(batch):
                                record(conn, action=actions.TIP_RECEIVED, object_id=f"bench{k}",
                                       detail={"oa": "bench"})
                    else:
                        conn.execute(text("INSERT INTO plain_bench (body) VALUES (:b)"),
                                     {"b": "x" * 200})
                counts[k] += 1

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.monotonic()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    engine.dispose()
    return sum(counts) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", default="1,2,4,8")
    parser.add_argument("--batch", type=int, default=50, help="events per batched transaction")
    args = parser.parse_args()
    from tests.postgres_server import PostgresServer

    server = PostgresServer.create()
    try:
        url = server.create_database("tipline_audit_ceiling")
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE plain_bench (id bigserial PRIMARY KEY, body text)"))
        engine.dispose()
        counts = [int(n) for n in args.threads.split(",")]
        audited = {n: round(run(url, n, args.seconds, "audited"), 1) for n in counts}
        batched = {n: round(run(url, n, args.seconds, "batched", args.batch) * args.batch, 1)
                   for n in counts}
        plain = {n: round(run(url, n, args.seconds, "plain"), 1) for n in counts}
        top = max(counts)
        out = {
            "benchmark": "audit_ceiling", "database": "postgresql",
            "audited_tx_per_s": audited, "plain_tx_per_s": plain,
            "ratio": round(audited[top] / plain[top], 3),
            "scaling": round(audited[top] / audited[min(counts)], 2),
            "plain_scaling": round(plain[top] / plain[min(counts)], 2),
            "ceiling_events_per_s": max(audited.values()),
            "per_tip_events": PER_TIP_EVENTS,
            "tips_per_s_ceiling": round(max(audited.values()) / PER_TIP_EVENTS, 1),
            "batch": args.batch,
            "batched_events_per_s": batched,
            "tips_per_s_ceiling_batched": round(max(batched.values()) / PER_TIP_EVENTS, 1),
        }
        for n in counts:
            print(f"{n} connections: audited {audited[n]:8.1f} tx/s, plain {plain[n]:8.1f} tx/s, "
                  f"batched {batched[n]:8.1f} events/s")
        print(json.dumps(out))
        return 0
    finally:
        server.destroy()


if __name__ == "__main__":
    sys.exit(main())
