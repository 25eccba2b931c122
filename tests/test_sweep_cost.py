"""Issue 15: every worker sweeps every 15 s. The sweep's reads of queued replies and pending
attachments scanned the whole `messages` and `attachments` tables (no index on their state):
an idle worker's CPU grew with every message ever received. Each read now uses a partial
index of the few rows still waiting, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event

from tipline.jobs.sweeper import sweep
from tipline.runtime import Runtime

# The partial indexes (migration 0033) each read must use.
SWEPT = {"messages": "ix_messages_queued", "attachments": "ix_attachments_pending"}


def plans(runtime: Runtime) -> dict[str, str]:
    """Each statement the sweep runs that reads a swept table, with its query plan."""
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if any(f"FROM {table}" in statement for table in SWEPT):
            statements.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", keep)
    try:
        sweep(runtime.sessions, runtime.redis, timedelta(seconds=30))
    finally:
        event.remove(runtime.engine, "before_cursor_execute", keep)
    found = {}
    with runtime.engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:  # a table this small is read whole anyway: ask whether an index serves
            conn.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(explain + statement, parameters).all()
            found[statement] = "\n".join(str(row[-1]) for row in rows)
    return found


def test_the_sweep_reads_only_the_rows_still_waiting(runtime: Runtime) -> None:
    found = plans(runtime)
    assert len(found) == len(SWEPT), found
    for statement, plan in found.items():
        for table, index in SWEPT.items():
            if f"FROM {table}" in statement:
                assert index in plan, plan
