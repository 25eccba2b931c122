"""Backup and restore (issue 16, "Restores look like tampering"; docs/operations.md).

A backup taken while tips and audit events flow, more work after it and a checkpoint witnessed
later, then the documented restore: SQLite through its online backup API, PostgreSQL through
pg_dump / pg_restore of the test cluster's database. Afterwards every tip still opens, and
verification reports BROKEN until the operator records the restore, then a restore (with what
was lost), not tampering. Real tampering after the restore is still reported.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.audit_helpers import add_events, audit_cli
from tests.databases import raw, sqlite_path
from tests.postgres_server import APP_ROLE, SUPERUSER, PostgresServer
from tests.test_dispatch import read_as, send
from tests.zalo_events import event
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.worker import checkpoint_once
from tipline.models import Tip
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")


class Backups:
    """The documented backup and restore of the database at ``url``."""

    def __init__(self, url: str, server: PostgresServer | None, where: Path) -> None:
        self.url, self.server, self.where = url, server, where

    def _pg(self, program: str, *args: str) -> None:
        assert self.server is not None
        subprocess.run(
            [str(self.server.bin_dir / program), "-h", "127.0.0.1", "-p", str(self.server.port),
             "-U", SUPERUSER, *args],
            check=True, capture_output=True, text=True,
        )  # fmt: skip

    def backup(self) -> None:
        if self.server is None:  # the online backup API: a consistent copy while in use
            source = sqlite3.connect(sqlite_path(self.url))
            target = sqlite3.connect(self.where / "backup.db")
            with target:
                source.backup(target)
            source.close()
            target.close()
            return
        name = make_url(self.url).database
        assert name is not None
        self._pg("pg_dump", "-Fc", "-f", str(self.where / "backup.dump"), name)

    def restore(self) -> None:
        if self.server is None:
            source = sqlite3.connect(self.where / "backup.db")
            target = sqlite3.connect(sqlite_path(self.url))
            with target:
                source.backup(target)
            source.close()
            target.close()
            return
        name = make_url(self.url).database
        assert name is not None
        self.server.drop_database(name)
        self.server.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)
            )
        )
        self._pg("pg_restore", "-d", name, str(self.where / "backup.dump"))


@pytest.fixture
def cli(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> Callable[..., tuple[int, str]]:
    return audit_cli(env, monkeypatch, runtime)


@pytest.fixture
def backups(request: pytest.FixtureRequest, runtime: Runtime, tmp_path: Path) -> Backups:
    url = runtime.config.database_url
    server = None if url.startswith("sqlite") else request.getfixturevalue("postgres")
    return Backups(url, server, tmp_path)


def new_tip(client: FlaskClient, runtime: Runtime, text: str, msg_id: str) -> int:
    send(client, event(text=text, msg_id=msg_id, user=f"84900{msg_id[-1]}"))
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip).order_by(Tip.id.desc()).limit(1)).one()
        public_id, tip_id = tip.public_id, tip.id
    assert dispatch_tip(public_id) == "dispatched"
    return tip_id


def test_a_restored_backup_opens_and_verifies_as_a_restore(
    client: FlaskClient,
    runtime: Runtime,
    backups: Backups,
    cli: Callable[..., tuple[int, str]],
) -> None:
    soon = replace(runtime, config=runtime.config.with_overrides(checkpoint_minutes=0))
    first = new_tip(client, runtime, "Tin báo trước khi sao lưu", "br-1")
    assert checkpoint_once(soon) is not None
    add_events(runtime, 2)  # after the last checkpoint before the backup: not yet witnessed
    backups.backup()
    second = new_tip(client, runtime, "Tin báo sau khi sao lưu", "br-2")
    later = checkpoint_once(soon)  # witnessed after the backup: lost with the restore
    assert later is not None

    runtime.engine.dispose()  # the services are stopped for the restore
    backups.restore()

    code, out = cli("verify")  # an unrecorded restore looks like deleted events ...
    assert code == 1 and "BROKEN" in out and f"#{later.seq}" in out, out
    assert "mark-restore" in out
    code, out = cli("mark-restore")  # ... until the operator records it
    assert code == 0, out
    assert f"#{later.seq}" in out and "were lost" in out
    code, out = cli("verify")
    assert code == 0, out
    assert "intact" in out and "restored from a backup" in out and f"#{later.seq}" in out
    code, out = cli("mark-restore")
    assert code == 0 and "no restore to record" in out

    # Every tip that was in the backup opens; the one made after it is gone with it.
    assert read_as(runtime, "canbo", first)[0]["text"] == "Tin báo trước khi sao lưu"
    assert read_as(runtime, "chihuy", first)[0]["text"] == "Tin báo trước khi sao lưu"
    with runtime.sessions() as session:
        assert second != first and session.get(Tip, second) is None

    # New work after the restore is witnessed as usual and verifies.
    third = new_tip(client, runtime, "Tin báo sau khi khôi phục", "br-3")
    assert read_as(runtime, "canbo", third)[0]["text"] == "Tin báo sau khi khôi phục"
    assert checkpoint_once(soon) is not None
    assert cli("verify")[0] == 0

    # Real tampering is still tampering.
    runtime.engine.dispose()
    with raw(runtime.config.database_url) as db:
        db.execute("UPDATE audit_events SET actor_name = 'someone' WHERE seq = 2")
    code, out = cli("verify")
    assert code == 1 and "BROKEN" in out and "#2" in out, out


def test_a_truncated_and_rewritten_chain_is_not_accepted_as_a_restore(
    runtime: Runtime, cli: Callable[..., tuple[int, str]]
) -> None:
    soon = replace(runtime, config=runtime.config.with_overrides(checkpoint_minutes=0))
    add_events(runtime, 4)
    assert checkpoint_once(soon) is not None
    add_events(runtime, 4)
    assert checkpoint_once(soon) is not None
    runtime.engine.dispose()
    with raw(runtime.config.database_url) as db:  # edit #2 and cut the tail at #6
        db.execute("UPDATE audit_events SET object_id = 'other' WHERE seq = 2")
        db.execute("DELETE FROM audit_events WHERE seq > 6")
        db.execute("UPDATE audit_head SET seq = 6")
    code, out = cli("mark-restore")
    assert code == 1 and "not a restore" in out, out
    assert cli("verify")[0] == 1
