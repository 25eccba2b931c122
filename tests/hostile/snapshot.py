"""What is stored, as one comparable value: every table's row count and a digest of its rows,
and the names in the file store.

Hostile requests must change nothing: take a :func:`snapshot` before, call
:func:`assert_unchanged` after. A digest per table (not just a count) catches an UPDATE that a
count would miss: a status flipped, a tip moved to another unit, a grant replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from tipline.models import Base
from tipline.runtime import Runtime

# The audit chain grows on purpose for some refused requests (a failed login, an auditor's
# page view, a search); tests that expect that leave these out and check the events instead.
AUDIT_TABLES = ("audit_events", "audit_head")

Snapshot = dict[str, str]


def snapshot(runtime: Runtime, *, skip: Iterable[str] = ()) -> Snapshot:
    """Row count and SHA-256 of the rows of every table, plus the file store's listing."""
    left_out = set(skip)
    state: Snapshot = {}
    with runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in left_out:
                continue
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            state[table.name] = f"{len(rows)} rows {digest.hexdigest()[:16]}"
    files = Path(runtime.config.data_dir) / "files"
    names = sorted(p.name for p in files.iterdir()) if files.is_dir() else []
    state["files/"] = f"{len(names)} files " + hashlib.sha256("\n".join(names).encode()).hexdigest()
    return state


def changed(before: Snapshot, after: Snapshot) -> dict[str, tuple[str | None, str | None]]:
    return {
        name: (before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def assert_unchanged(runtime: Runtime, before: Snapshot, *, skip: Iterable[str] = ()) -> None:
    """Fails naming each table whose rows changed since ``before``."""
    after = snapshot(runtime, skip=skip)
    diff = changed(before, after)
    assert diff == {}, f"stored state changed: {diff}"
