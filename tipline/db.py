"""Engine and sessions.

SQLite (the embedded default) gets WAL, a busy timeout, and transactions that Tipline begins
itself: ``BEGIN`` for ordinary work and ``BEGIN IMMEDIATE`` for :func:`write_transaction`, so a
writer takes SQLite's write lock before it reads and never fails half-way with a lock upgrade
that another process won (pysqlite's own deferred BEGIN does exactly that under load).

PostgreSQL keeps the same contract with one transaction-scoped advisory lock, the *write lock*,
taken in one of two modes (issue 15: taken exclusively by everything, it made the whole fleet
one writer: with 4 workers, sessions waited on it 48 % of their time):

- **exclusive** (the default): read-then-write work that has not been written to lock its own
  rows (admin changes, key rotations, account changes) runs one at a time, as on SQLite,
  instead of two READ COMMITTED transactions reading the same row and the later write losing
  the earlier one;
- **shared** (``row_locks=True``): the pipeline and the officers' work on tips (expansion,
  dispatch, sends, tip views and actions, retention) lock the rows they read-then-write
  themselves (``SELECT … FOR UPDATE``, ``SKIP LOCKED`` claims, guarded updates), so they run
  side by side and wait only for a transaction that touches the same rows, or for an
  exclusive one.

Ordinary transactions (the webhook's insert, reads) take neither. The lock goes with the
transaction, or with the connection if the server drops it. The audit chain's head is the
one row every audited transaction shares; ``tipline.audit.deferred`` moves it once, just
before commit, so it is held for the commit alone.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keys import chain_hash

IMMEDIATE = "tipline_sqlite_immediate"  # execution option: True (exclusive), SHARED or PROMPT
SHARED = "shared"
# The webhook's one INSERT (tipline.intake.recording): on SQLite it asks for the write lock
# every 2 ms at most rather than through SQLite's busy handler, whose sleeps grow to 100 ms,
# so that a webhook is not starved by workers that take the lock again as soon as they let it
# go (issue 15: webhook p95 2.3 s at 200 tips/s). On PostgreSQL it takes no lock (one INSERT).
PROMPT = "prompt"
# Its waits: from 0.1 ms (behind another webhook's INSERT, a fraction of a millisecond) doubling
# up to 2 ms (behind a worker's batch): a fixed 1 ms cost the intake a third of its rate.
PROMPT_FIRST_WAIT = 0.0001
PROMPT_LONGEST_WAIT = 0.002
# The advisory lock key of write transactions on PostgreSQL ("tipline" in ASCII).
WRITE_LOCK_KEY = 0x7469706C696E65
# keys.chain_hash as an SQL function, so the audit head moves in one statement
# (tipline.audit.chain).
SQLITE_CHAIN_HASH = "tipline_chain_hash"


def register_sqlite_functions(dbapi_connection: Any) -> None:
    dbapi_connection.create_function(SQLITE_CHAIN_HASH, 2, chain_hash, deterministic=True)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Erased rows (transit grants, sealed events) are overwritten, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            register_sqlite_functions(dbapi_connection)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get(IMMEDIATE, False)
            pooled = connection.connection
            if immediate == PROMPT:
                _begin_promptly(pooled.dbapi_connection, pooled.info)
                return
            if pooled.info.pop(BUSY_HANDLER_OFF, False):
                connection.exec_driver_sql("PRAGMA busy_timeout=30000")
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "begin")
        def _postgresql_begin(connection: Connection) -> None:
            mode = connection.get_execution_options().get(IMMEDIATE, False)
            if mode and mode != PROMPT:
                # Waits at most as long as SQLite's busy timeout, then fails rather than hangs.
                take = "pg_advisory_xact_lock_shared" if mode == SHARED else "pg_advisory_xact_lock"
                connection.exec_driver_sql(
                    f"SELECT set_config('lock_timeout', '30s', true), {take}({WRITE_LOCK_KEY})"
                )

    return engine


def _begin_promptly(dbapi_connection: Any, info: dict[str, Any], timeout: float = 30.0) -> None:
    """BEGIN IMMEDIATE, asked for again and again (PROMPT_FIRST_WAIT doubling up to
    PROMPT_LONGEST_WAIT) for up to ``timeout`` (SQLite's busy timeout), then "database is
    locked" as SQLite would say it.

    SQLite's own busy handler is off meanwhile, and stays off until the connection begins any
    other way (``info``, the pooled connection's): the intake tier's connections begin only so,
    and two PRAGMAs a webhook were a twentieth of its CPU (issue 15)."""
    cursor = dbapi_connection.cursor()
    try:
        if not info.get(BUSY_HANDLER_OFF):
            cursor.execute("PRAGMA busy_timeout=0")
            info[BUSY_HANDLER_OFF] = True
        deadline = time.monotonic() + timeout
        wait = PROMPT_FIRST_WAIT
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except Exception as exc:  # sqlite3.OperationalError: the lock is held
                if "database is locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(wait)
            wait = min(wait * 2, PROMPT_LONGEST_WAIT)
    finally:
        cursor.close()


BUSY_HANDLER_OFF = "tipline_busy_handler_off"


@contextmanager
def prompt_write(engine: Engine) -> Iterator[Connection]:
    """A transaction for one short write that must not wait behind longer ones (PROMPT)."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{IMMEDIATE: PROMPT})
        with connection.begin():
            yield connection


# How often a request whose SQLite snapshot went stale is run again (retry_when_locked).
LOCKED_RETRIES = 3


def database_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked": a transaction that began by reading and then wanted to
    write after another connection had committed (SQLITE_BUSY_SNAPSHOT, which the busy
    timeout does not wait out), or a lock held past the timeout."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


def retry_when_locked[F: Callable[..., Any]](view: F) -> F:
    """Run ``view`` again (up to LOCKED_RETRIES times) when SQLite refused its transaction as
    locked: everything it wrote was rolled back, so running it again is what the user asked.

    For views whose transaction reads, then runs something slow (a login's Argon2id), then
    writes: a worker's commit in between (many right after a restart) made the login answer
    500 "database is locked". PostgreSQL never raises it; there the view runs once.
    """

    @functools.wraps(view)
    def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                return view(*args, **kwargs)
            except OperationalError as exc:
                if not database_locked(exc) or attempt == LOCKED_RETRIES:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("unreachable")  # pragma: no cover

    return cast(F, run)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits together or not at all."""
    with factory() as session, session.begin():
        yield session


def _mode(row_locks: bool) -> bool | str:
    return SHARED if row_locks else True


@contextmanager
def write_transaction(engine: Engine, *, row_locks: bool = False) -> Iterator[Connection]:
    """A Core connection in a transaction that holds the write lock from its first statement.

    On PostgreSQL the transaction takes the write advisory lock first, shared when
    ``row_locks`` (the transaction locks its own rows: module docstring).
    """
    with engine.connect() as connection:
        connection = connection.execution_options(**{IMMEDIATE: _mode(row_locks)})
        with connection.begin():
            yield connection


@contextmanager
def write_session(factory: sessionmaker[Session], *, row_locks: bool = False) -> Iterator[Session]:
    """An ORM session for read-then-write work (jobs, actions): immediate on SQLite; on
    PostgreSQL the write lock, shared when ``row_locks`` (module docstring)."""
    with factory() as session, session.begin():
        session.connection(execution_options={IMMEDIATE: _mode(row_locks)})
        yield session
