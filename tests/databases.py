"""The test database backend: SQLite files or databases on the session's PostgreSQL cluster.

``TIPLINE_TEST_DATABASE`` picks the backend for a whole pytest run ("sqlite", the default, or
"postgresql"); `make test` runs the suite once with each. Tests never branch on the backend
for what the application does: they get URLs from :class:`Databases` and, where they play an
attacker who has the database itself, go through :class:`Raw`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from tests.postgres_server import SUPERUSER, PostgresServer
from tipline.audit.chain import format_time

BACKENDS = ("sqlite", "postgresql")
BACKEND = os.environ.get("TIPLINE_TEST_DATABASE", "sqlite")
if BACKEND not in BACKENDS:
    raise RuntimeError(f"TIPLINE_TEST_DATABASE={BACKEND!r}: one of {', '.join(BACKENDS)}")

# What a database refuses to store (constraints, types), whichever the backend.
REFUSED: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    psycopg.IntegrityError,
    psycopg.DataError,
    psycopg.errors.DatatypeMismatch,
)
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
# The append-only rules refusing an UPDATE/DELETE/TRUNCATE of audit rows (trigger or privilege).
AUDIT_REFUSALS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    psycopg.errors.InsufficientPrivilege,
)
# SQLite's append-only triggers (migration 0003); PostgreSQL's are bypassed per connection.
SQLITE_AUDIT_TRIGGERS = (
    "audit_events_no_update",
    "audit_events_no_delete",
    "audit_head_forward_only",
    "audit_head_no_delete",
)


class Databases:
    """Creates and drops the test databases of one session on one backend.

    On PostgreSQL a copy of a template is made ahead of time and dropped afterwards on a
    background thread: CREATE DATABASE takes longer than many tests, and the server can do it
    while the test runs.
    """

    def __init__(self, root: Path, server: PostgresServer | None) -> None:
        self.root = root
        self.server = server
        self._names = count()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="databases")
        self._spares: dict[str, Future[str]] = {}
        self._pending: list[Future[Any]] = []

    def create(self, template: str | None = None, sqlite_file: Path | None = None) -> str:
        """A new database, empty or a copy of the database at URL ``template``; its URL.

        ``sqlite_file`` places an SQLite database (a test's data dir, beside its other files).
        """
        name = f"t{next(self._names)}"
        if self.server is None:
            path = sqlite_file or self.root / f"{name}.db"
            if template is not None:
                shutil.copy(sqlite_path(template), path)
            return f"sqlite:///{path}"
        source = make_url(template).database if template is not None else None
        return self.server.create_database(name, template=source)

    def copy(self, template: str, sqlite_file: Path | None = None) -> str:
        """A copy of ``template`` (made in advance on PostgreSQL); its URL."""
        if self.server is None:
            return self.create(template, sqlite_file)
        spare = self._spares.pop(template, None)
        url = spare.result() if spare is not None else self.create(template)
        self._spares[template] = self._background.submit(self.create, template)
        return url

    def drop(self, url: str) -> None:
        if self.server is None:
            path = sqlite_path(url)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = make_url(url).database
        assert name is not None
        self._pending = [f for f in self._pending if not f.done() or f.result() is None]
        self._pending.append(self._background.submit(self.server.drop_database, name))

    def close(self) -> None:
        """Wait for the background work (and fail on its errors); drop the spare copies."""
        for spare in self._spares.values():
            self.drop(spare.result())
        self._spares.clear()
        for future in self._pending:
            future.result()
        self._background.shutdown()


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


class Raw:
    """Plain SQL on a database as someone who has the database itself, not the application.

    On SQLite that is the file (the append-only triggers are dropped, as an attacker would);
    on PostgreSQL the superuser with triggers off (``session_replication_role = replica``),
    who is not bound by the privileges the migration revoked. Statements use ``?``
    placeholders on both. Times are read back in the chain's canonical text form (the form
    SQLite stores) and text times are read as UTC.
    """

    def __init__(self, connection: sqlite3.Connection | psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        if isinstance(self._connection, sqlite3.Connection):
            cursor = self._connection.execute(statement, tuple(params))
        else:
            if params:
                cursor = self._connection.execute(  # type: ignore[call-overload]
                    statement.replace("?", "%s"), tuple(params)
                )
            else:  # no placeholders to translate, and a literal % stays one
                cursor = self._connection.execute(statement)  # type: ignore[call-overload]
        rows = cursor.fetchall() if cursor.description is not None else []
        return [
            tuple(format_time(v) if isinstance(v, datetime) else v for v in row) for row in rows
        ]

    def scalar(self, statement: str, params: Sequence[object] = ()) -> Any:
        return self.execute(statement, params)[0][0]


@contextmanager
def raw(url: str, *, bypass_triggers: bool = True) -> Iterator[Raw]:
    """One transaction of :class:`Raw` SQL on the database at ``url``, committed at the end.

    ``bypass_triggers=False`` keeps the append-only rules in force (to show they refuse).
    """
    if url.startswith("sqlite"):
        db = sqlite3.connect(sqlite_path(url), timeout=30)
        try:
            with db:
                if bypass_triggers:
                    for trigger in SQLITE_AUDIT_TRIGGERS:
                        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                yield Raw(db)
        finally:
            db.close()
        return
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, dbname=parsed.database, user=SUPERUSER
    ) as conn:  # commits on a clean exit, rolls back on an exception
        conn.execute("SET TIME ZONE 'UTC'")
        if bypass_triggers:
            conn.execute("SET session_replication_role = replica")
        yield Raw(conn)


def table_names(url: str) -> list[str]:
    """The application's tables (Alembic's own version table left out)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            names = inspect(connection).get_table_names()
    finally:
        engine.dispose()
    return sorted(name for name in names if name != "alembic_version")


def every_value(url: str) -> Iterator[object]:
    """Every value in every table, read as the database's owner: for "no trace of X" checks."""
    for table in table_names(url):
        with raw(url, bypass_triggers=False) as db:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - a table's name
                yield from row


def stored_bytes(url: str) -> bytes:
    """Every byte the database keeps on disk for ``url``: for "not at rest" checks.

    SQLite: the file and its WAL. PostgreSQL: the database's own directory in the cluster
    (``base/<oid>``) after a CHECKPOINT, so what was committed is in those files.
    """
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal")]
    else:
        with raw(url, bypass_triggers=False) as db:
            db.execute("CHECKPOINT")
            data_directory = db.scalar("SHOW data_directory")
            oid = db.scalar("SELECT oid FROM pg_database WHERE datname = current_database()")
        files = sorted((Path(data_directory) / "base" / str(oid)).iterdir())
    return b"\n".join(path.read_bytes() for path in files if path.is_file())
