"""Invariant 3 under fire: nothing the webhook acknowledged is lost or handled twice.

2,000 signed webhooks stream in from six clients at a steady rate while workers are
SIGKILLed (and restarted, as systemd would), Redis crashes and comes back, PostgreSQL is
stopped for ten seconds, and finally every worker and Redis go down at the same moment. Then,
within a deadline: every acknowledged ``msg_id`` is one stored message, every tip is
dispatched exactly once and acknowledged to its informant exactly once on Zalo (a second copy
is excused only when a worker was killed in the instant after Zalo accepted the first: Zalo has
no idempotency key), and the audit chain verifies. While PostgreSQL is down the webhook must
refuse (so Zalo retries), never answer 200.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from tests.faults.cluster import Cluster
from tests.faults.ledger import Ledger, take
from tests.faults.redis_server import RedisServer
from tests.faults.stream import Stream, make_tips
from tests.faults.stream import Tip as SentTip
from tests.postgres_server import PostgresServer
from tipline.config import Config

TIPS = 2000
RATE = 40.0  # deliveries per second: a 50 s stream, faster than 3 workers on 2 cores dispatch
DB_OUTAGE = 10.0
# After the stream: fail when nothing moved for STALL seconds (a stuck job, a lost tip) or,
# on a slow machine, after DRAIN_CAP in all.
STALL = 45.0
DRAIN_CAP = 360.0
# Zalo has no idempotency key. A worker SIGKILLed while a send is in flight (written to the
# socket, or answered but not yet marked in Redis: tipline.jobs.outbound) leaves a send that
# will be repeated; nothing else may. A second copy is excused only when a kill came within
# this long of the first, before or after it: a request the worker had written before it died
# is accepted by Zalo a moment *after* the kill (the simulator, on a loaded machine, took up
# to 0.1 s to get to such requests; the kill's time is taken just before the signal).
KILL_WINDOW = 0.5


def excused(times: list[float], kills: list[float]) -> bool:
    """Every copy but the last accepted around the moment a worker was killed, each around a
    kill of its own: a message goes out again only when the worker sending it died with it in
    flight. One message can be that unlucky twice: in flight at the kill at 36 s, sent again
    when the sweeper found it 5-6 s later, just as the kill at 42 s came (seen once in CI)."""
    used: list[float] = []
    for copy in sorted(times)[:-1]:
        near = [
            k
            for k in kills
            if abs(k - copy) <= KILL_WINDOW and all(abs(k - u) > KILL_WINDOW for u in used)
        ]
        if not near:
            return False
        used.append(near[0])
    return True


def test_a_copy_is_excused_only_by_a_kill_around_the_copy_before_it() -> None:
    kills = [10.0, 10.003, 16.0]
    assert excused([10.1, 15.0], kills)  # in flight at the kill at 10 s
    assert excused([10.1, 16.1, 19.0], kills)  # ... and again at the kill at 16 s
    assert not excused([12.0, 15.0], kills)  # no kill around the first copy
    assert not excused([10.1, 10.2, 15.0], kills)  # two copies around one kill
    assert not excused([10.1, 13.0, 19.0], kills)  # nothing explains the second copy


@dataclass
class Faults:
    """When each fault happened (monotonic seconds) and the PostgreSQL outage window."""

    log: list[tuple[float, str]] = field(default_factory=list)
    db_down: tuple[float, float] | None = None

    def note(self, what: str) -> None:
        self.log.append((time.monotonic(), what))

    @property
    def last(self) -> float:
        return self.log[-1][0]


def run_faults(
    stream: Stream, cluster: Cluster, redis: RedisServer, postgres: PostgresServer
) -> Faults:
    faults = Faults()

    def at(second: float, action: Callable[[], None], what: str) -> None:
        time.sleep(max(stream.started + second - time.monotonic(), 0))
        action()
        faults.note(what)

    at(5, lambda: cluster.kill_worker(0), "SIGKILL worker 0")
    at(10, lambda: cluster.kill_worker(1), "SIGKILL worker 1")

    def redis_crash() -> None:
        redis.crash()
        time.sleep(2)
        redis.start()

    at(15, redis_crash, "Redis SIGKILL, 2 s down, restarted")

    def db_outage() -> None:
        postgres.stop("fast")
        down_from = time.monotonic()
        time.sleep(DB_OUTAGE)
        down_until = time.monotonic()
        postgres.start()
        faults.db_down = (down_from, down_until)

    at(22, db_outage, "PostgreSQL stopped 10 s, started")
    at(36, lambda: (cluster.kill_worker(1), cluster.kill_worker(2)), "SIGKILL workers 1 and 2")
    at(42, lambda: cluster.kill_worker(0), "SIGKILL worker 0")

    def everything_at_once() -> None:
        # Every worker and Redis at the same moment; the volatile key store stays up, so the
        # transit epochs survive (its own loss is tests/test_transit.py's, with its recovery).
        redis.crash()
        for index in range(len(cluster.procs)):
            cluster.kill_worker(index)
        time.sleep(2)
        redis.start()

    at(46, everything_at_once, "SIGKILL every worker and Redis at once, Redis back after 2 s")
    return faults


def drain(
    engine: Engine, config: Config, base_url: str, tips: list[SentTip], since: float
) -> Ledger:
    """Poll the ledger until everything went through, nothing moved for STALL s, or DRAIN_CAP."""
    ledger = take(engine, config, base_url, tips)
    progress, moved = ledger.progress, time.monotonic()
    while not ledger.drained:
        now = time.monotonic()
        if now - moved > STALL or now - since > DRAIN_CAP:
            break
        time.sleep(2)
        ledger = take(engine, config, base_url, tips)
        if ledger.progress != progress:
            progress, moved = ledger.progress, time.monotonic()
    return ledger


@pytest.mark.timeout(DRAIN_CAP + TIPS / RATE + 120)
def test_nothing_acknowledged_is_lost_or_doubled(
    cluster: Cluster,
    redis_server_proc: RedisServer,
    postgres: PostgresServer,
    config: Config,
    tmp_path: Path,
) -> None:
    tips = make_tips(TIPS)
    stream = Stream(cluster.base_url, tips, rate=RATE)
    stream.start()
    faults = run_faults(stream, cluster, redis_server_proc, postgres)
    assert stream.wait(timeout=TIPS / RATE + 60), "some tips were never acknowledged"
    streamed = time.monotonic()

    engine = create_engine(config.database_url, pool_pre_ping=True)
    try:
        ledger = drain(engine, config, cluster.base_url, tips, streamed)
        drained_at = time.monotonic()
    finally:
        engine.dispose()

    summary = {
        **stream.summary(),
        **ledger.summary(),
        "faults": [(round(t - stream.started, 1), what) for t, what in faults.log],
        "stream_seconds": round(streamed - stream.started, 1),
        "drain_after_last_fault_s": round(drained_at - faults.last, 1),
        "drain_after_last_tip_s": round(drained_at - stream.last_sent, 1),
        "worker_exits": [(e.worker, e.returncode, e.killed_by_test) for e in cluster.exits],
        "zalo_duplicates": len(ledger.duplicates()["zalo_acks"]),
        "kills": [round(k, 3) for k in cluster.kills],
        "duplicate_times": {
            code: [round(t, 3) for t in ledger.zalo_ack_times[code]]
            for code in ledger.duplicates()["zalo_acks"]
        },
    }
    (tmp_path / "faults-summary.json").write_text(json.dumps(summary, indent=1))
    print("FAULTS", json.dumps(summary))

    # The webhook never said 200 for a delivery it handled while PostgreSQL was down.
    assert faults.db_down is not None
    down_from, down_until = faults.db_down
    during = [a for t in tips for a in t.attempts if down_from < a.started and a.ended < down_until]
    assert during, "no delivery fell inside the PostgreSQL outage"
    assert not [a for a in during if a.status == 200], "200 while the database was down"
    assert {a.status for a in during} <= {503, None}, {a.status for a in during}

    assert ledger.drained, f"not drained (stalled {STALL} s or over {DRAIN_CAP} s): {summary}"
    assert ledger.acknowledged == TIPS
    assert not ledger.missing
    assert ledger.stored == TIPS
    duplicates = ledger.duplicates()
    assert duplicates["dispatch_events"] == {}, duplicates
    assert duplicates["acks_queued"] == {}, duplicates
    unexcused = [
        c for c in duplicates["zalo_acks"] if not excused(ledger.zalo_ack_times[c], cluster.kills)
    ]
    assert unexcused == [], {c: ledger.zalo_ack_times[c] for c in unexcused}
    assert not ledger.acks_failed
    assert not ledger.zalo_wrong_user

    verify = cluster.tipline("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
