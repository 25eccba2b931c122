"""A throwaway PostgreSQL cluster for one test session, from Debian's server binaries.

Why a cluster of our own rather than the system service: tests must not depend on (or disturb)
whatever runs on the machine, must start from nothing on CI, and must be able to stop and start
the server at will (fault injection takes PostgreSQL away mid-run). `make test` installs
Debian's ``postgresql`` package; nothing here enables or starts its service.

initdb and postgres refuse to run as root, so when the tests run as root the cluster belongs to
the ``postgres`` system user (the Debian package creates it) and its directory is handed over.

The cluster trusts every local connection (it only listens on 127.0.0.1 and a private socket
directory) and trades durability for speed: fsync and synchronous commit are off.

Two roles: ``postgres`` (superuser, for creating and dropping databases) and ``tipline``, an
ordinary role that owns the test databases and is the one the application connects as, so
privileges the migrations revoke (the audit tables' UPDATE/DELETE/TRUNCATE) really bind it.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
APP_ROLE = "tipline"

# Speed over durability: a crash loses a throwaway cluster, nothing else.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
    "log_connections": "off",
    # Vietnam's zone, not UTC: a naive timestamp somewhere shows up as a 7-hour error.
    "timezone": "'Asia/Ho_Chi_Minh'",
}


def find_bin_dir() -> Path:
    """The newest Debian PostgreSQL version's bin directory (holding initdb and pg_ctl)."""
    candidates = sorted(
        (path for path in DEBIAN_ROOT.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"no PostgreSQL server under {DEBIAN_ROOT}: `make test` installs Debian's postgresql"
        )
    return candidates[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One cluster in a temporary directory, on 127.0.0.1:``port`` and a unix socket there.

    ``stop()`` and ``start()`` are independent of each other and of the cluster's creation:
    the port, data and roles survive a stop, so a restarted server is the same server.
    """

    def __init__(self, base: Path, port: int, bin_dir: Path) -> None:
        self.base = base
        self.port = port
        self.bin_dir = bin_dir
        self.data = base / "data"
        self.log = base / "postgres.log"
        self._owner = pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None

    @classmethod
    def create(cls, parent: Path | None = None) -> PostgresServer:
        """initdb a new cluster, start it and create the application role."""
        base = Path(tempfile.mkdtemp(prefix="tipline-pg-", dir=parent))
        server = cls(base, free_port(), find_bin_dir())
        server._initdb()
        server.start()
        atexit.register(server.destroy)  # a crashed test run still leaves no server behind
        server.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(APP_ROLE)))
        return server

    # --- running the server's own programs -------------------------------------------------

    def _run(self, program: str, args: Sequence[str], check: bool = True) -> int:
        """Run one of PostgreSQL's programs as the cluster's owner."""
        kwargs: dict[str, Any] = {}
        if self._owner is not None:
            kwargs = {"user": self._owner.pw_uid, "group": self._owner.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(self.base)},
            cwd=self.base,
            **kwargs,
        )
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{log[-4000:]}"
            )
        return result.returncode

    def _initdb(self) -> None:
        if self._owner is not None:
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb",
            [
                "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                "--locale=C.UTF-8", "--no-sync", "--no-instructions",
            ],
        )  # fmt: skip
        settings = {
            **SETTINGS,
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# tests/postgres_server.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        status = ["status", "-D", str(self.data)]
        return self.data.exists() and self._run("pg_ctl", status, check=False) == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections (no-op when running)."""
        if not self.running:
            self._run(
                "pg_ctl", ["start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log)]
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" rolls back and disconnects clients, "immediate" is a crash."""
        if self.running:
            self._run("pg_ctl", ["stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data)])

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete its directory (idempotent)."""
        if self.base.exists():
            try:
                self.stop("immediate")
            finally:
                shutil.rmtree(self.base, ignore_errors=True)

    # --- databases ---------------------------------------------------------------------------

    def url(self, database: str = "postgres", user: str = APP_ROLE) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) over TCP to one database of this cluster."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser connection in autocommit mode, over the unix socket."""
        return psycopg.connect(
            host=str(self.base), port=self.port, user=SUPERUSER, dbname=database, autocommit=True
        )

    def execute(self, statement: sql.SQL | sql.Composed | str, database: str = "postgres") -> None:
        """Run one statement as the superuser (autocommit: CREATE DATABASE needs it)."""
        with self.connect(database) as conn:
            conn.execute(sql.SQL(statement) if isinstance(statement, str) else statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database owned by the application role, empty or a copy of ``template``.

        Copies use FILE_COPY: with fsync off it is several times faster than PostgreSQL 15's
        default (WAL_LOG) for a small database. The template must have no open connections.
        """
        query = sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(APP_ROLE)
        )
        if template is not None:
            query = query + sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(template)
            )
        self.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still on it (a test's leftover pool)."""
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self.execute(drop.format(sql.Identifier(name)))
