"""tipline.db's write transactions on the run's backend: read-then-write work never loses an
update (SQLite: BEGIN IMMEDIATE; PostgreSQL: the write advisory lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tipline.db import make_engine, prompt_write, write_session, write_transaction
from tipline.runtime import Runtime

THREADS = 4
ROUNDS = 8


def run_together(work: Callable[[], None]) -> list[BaseException]:
    """``work`` on THREADS threads at once; what any of them raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _core(runtime: Runtime) -> AbstractContextManager[Any]:
    return write_transaction(runtime.engine)


def _orm(runtime: Runtime) -> AbstractContextManager[Any]:
    return write_session(runtime.sessions)


@pytest.mark.parametrize("opener", [_core, _orm], ids=["write_transaction", "write_session"])
def test_read_then_write_transactions_never_lose_an_update(
    runtime: Runtime, opener: Callable[[Runtime], AbstractContextManager[Any]]
) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))

    def bump() -> None:
        for _ in range(ROUNDS):
            with opener(runtime) as db:
                n = db.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                time.sleep(0.005)  # another writer would read the same n here
                db.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    assert run_together(bump) == []
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == THREADS * ROUNDS


def test_row_locked_transactions_run_together_and_never_lose_an_update(runtime: Runtime) -> None:
    """The pipeline's mode (tipline.db, row_locks): each locks the rows it reads-then-writes;
    their audit events, appended together before commit, keep one unbroken chain."""
    from tipline import audit
    from tipline.audit import verify_chain

    with runtime.engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter (id, n) VALUES (1, 0)"))

    def bump() -> None:
        for _ in range(ROUNDS):
            with audit.audited_session(runtime.sessions) as db:
                n = db.execute(
                    text("SELECT n FROM counter WHERE id = 1 FOR UPDATE")
                    if runtime.engine.dialect.name == "postgresql"
                    else text("SELECT n FROM counter WHERE id = 1")
                ).scalar_one()
                for _ in range(3):
                    audit.record(db, action=audit.actions.PRIORITY_CHANGE, object_id=str(n))
                time.sleep(0.005)
                db.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    assert run_together(bump) == []
    with runtime.sessions() as session:
        assert session.execute(text("SELECT n FROM counter")).scalar_one() == THREADS * ROUNDS
        result = verify_chain(session)
        assert result.ok and result.checked == 3 * THREADS * ROUNDS


def test_a_row_locked_transaction_must_append_its_audit_events_last(runtime: Runtime) -> None:
    """Locking the chain's head in the middle of a row-locked transaction could deadlock with
    one holding a row this one wants next: refused, so every such path uses audit.deferred."""
    from tipline import audit

    with pytest.raises(audit.AuditError), write_session(runtime.sessions, row_locks=True) as db:
        audit.record(db, action=audit.actions.PRIORITY_CHANGE)


def test_a_prompt_write_turns_the_busy_handler_off_once_and_other_transactions_get_it_back(
    tmp_path: Path,
) -> None:
    """The webhook's prompt BEGIN polls for the lock itself (tipline.db.PROMPT): SQLite's busy
    handler is off for it, set once a connection rather than twice a webhook, and back on (a
    30 s wait) for any other transaction on that connection. SQLite's own engine, whatever the
    run's backend (PostgreSQL has no busy handler)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    engine.dispose()
    engine.pool = engine.pool.recreate()  # one connection, so every use below shares it
    statements: list[str] = []

    def busy_timeout(conn: Any) -> int:
        return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())

    with engine.connect() as conn:
        conn.connection.dbapi_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]
    for _ in range(3):
        with prompt_write(engine) as conn:
            assert busy_timeout(conn) == 0
    assert [s for s in statements if "busy_timeout=" in s] == ["PRAGMA busy_timeout=0"]
    with engine.begin() as conn:
        assert busy_timeout(conn) == 30000
    with prompt_write(engine) as conn:
        assert busy_timeout(conn) == 0
    engine.dispose()
