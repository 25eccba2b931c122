"""PostgreSQL roles: the owner migrates; the tiers run as roles that own nothing.

A process holding the owner's credentials could drop the audit triggers, rewrite tables, or
swap a unit's public key. Now `tipline db upgrade` runs as the owner and grants
(tipline.migrate.grant_roles):

- the runtime role (staff, public, workers) what the owner kept of SELECT, INSERT, UPDATE and
  DELETE on each table (not UPDATE or DELETE of the audit tables); owning nothing, it cannot
  drop a trigger, alter or truncate a table;
- the intake role INSERT on the inbound and quarantined events, and SELECT on the columns of
  the public keys it seals to: it cannot read a tip or change a key.

The whole flow (units, officers, a webhook through the intake tier, the worker's dispatch, an
officer's login) runs as those roles. These run on PostgreSQL in either pass (the session's
own cluster); SQLite has no roles (its file's owner is the only one).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from flask.testing import FlaskClient
from prometheus_client import generate_latest
from psycopg import sql
from sqlalchemy import select

from tests.conftest import free_port  # noqa: F401  (conftest is imported for its fixtures)
from tests.postgres_server import PostgresServer
from tests.triage_helpers import login
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config
from tipline.jobs.worker import run_worker
from tipline.metrics import registry_for
from tipline.migrate import DatabaseRoles, upgrade
from tipline.models import Tip
from tipline.runtime import Runtime, install


@dataclass
class RoleDatabase:
    server: PostgresServer
    name: str
    owner: str
    runtime: str
    intake: str
    metrics: str

    def url(self, role: str) -> str:
        return self.server.url(self.name, user=role)

    def connect(self, role: str) -> psycopg.Connection[object]:
        return psycopg.connect(
            host=str(self.server.base), port=self.server.port, user=role, dbname=self.name,
            autocommit=True,
        )  # fmt: skip


@pytest.fixture
def roles(postgres: PostgresServer) -> Iterator[RoleDatabase]:
    """A database created as docs/deploy.md creates it: owned by the owner role, connectable
    by the runtime and intake roles; migrated by the owner, granting the two roles."""
    suffix = secrets.token_hex(4)
    found = RoleDatabase(
        postgres, f"roles_{suffix}", f"own_{suffix}", f"run_{suffix}", f"in_{suffix}",
        f"met_{suffix}",
    )  # fmt: skip
    for role in (found.owner, found.runtime, found.intake, found.metrics):
        postgres.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    postgres.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(found.name), sql.Identifier(found.owner)
        )
    )
    postgres.execute(
        sql.SQL(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT ALL ON SCHEMA public TO {}"
        ).format(sql.Identifier(found.owner)),
        database=found.name,
    )
    upgrade(
        found.url(found.owner),
        roles=DatabaseRoles(found.runtime, found.intake, found.metrics),
    )
    yield found
    postgres.drop_database(found.name)
    for role in (found.runtime, found.intake, found.metrics, found.owner):
        postgres.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def database_url(roles: RoleDatabase) -> str:
    """conftest's fixtures (runtime, app, units) run as the runtime role."""
    return roles.url(roles.runtime)


def _refused(conn: psycopg.Connection[object], statement: str) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        conn.execute(statement)  # type: ignore[arg-type]
    return str(refused.value)


def test_the_runtime_role_runs_everything_and_the_intake_role_only_stores_events(
    roles: RoleDatabase,
    runtime: Runtime,
    config: Config,
    client: FlaskClient,
    units: dict[str, str],
) -> None:
    runtime.transit.rotate()  # the worker's first act: a transit epoch (runtime role)
    intake = create_app(
        config.with_overrides(database_url=roles.url(roles.intake)), staff_ui=False
    ).test_client()
    install(runtime)  # create_app installed the intake app's runtime: jobs use the worker's
    raw = event(text="Có đánh bạc ở chợ", msg_id="roles-1")
    answer = intake.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert answer.status_code == 200 and answer.json == {"ok": True}, answer.json
    run_worker(runtime, burst=True)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert tip.dispatched_at is not None
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    assert client.get(f"/triage/tips/{tip.public_id}").status_code == 200

    with roles.connect(roles.intake) as conn:
        # Neither a tip nor a stored event, an OA's tokens or an officer.
        for table in ("tips", "messages", "key_grants", "officers"):
            _refused(conn, f"SELECT * FROM {table}")  # noqa: S608 - fixed names
        _refused(conn, "SELECT sealed_tokens FROM official_accounts")
        # No key changes: not a unit's public key, not a transit epoch.
        _refused(conn, "UPDATE unit_keys SET public_key = public_key")
        _refused(conn, "UPDATE transit_epochs SET public_key = public_key")
        _refused(conn, "INSERT INTO unit_keys (unit_id, version, public_key) VALUES (1, 9, 'x')")
        _refused(conn, "SELECT sealed_event FROM inbound_events")
        _refused(conn, "DELETE FROM inbound_events")
        _refused(
            conn, "INSERT INTO outbox (queue, job, ref, created_at) VALUES ('a','b','c',now())"
        )
        # What it reads: the public keys it seals to.
        assert conn.execute("SELECT public_key FROM unit_keys").fetchall()


def test_the_runtime_role_cannot_drop_triggers_alter_tables_or_rewrite_the_audit(
    roles: RoleDatabase, runtime: Runtime, units: dict[str, str]
) -> None:
    with roles.connect(roles.runtime) as conn:
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone()
        for statement in (
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "ALTER TABLE audit_events DISABLE TRIGGER ALL",
            "ALTER TABLE tips ADD COLUMN stolen text",
            "DROP TABLE key_grants",
            "TRUNCATE audit_events",
            "UPDATE audit_events SET seq = seq",
            "DELETE FROM audit_events",
            "DELETE FROM audit_head",
            "UPDATE alembic_version SET version_num = version_num",
            "CREATE TABLE stolen (x int)",
        ):
            message = _refused(conn, statement)
            assert "permission denied" in message or "must be owner" in message, message


def test_the_metrics_role_reads_what_a_scrape_shows_and_nothing_of_a_tip(
    roles: RoleDatabase, runtime: Runtime, config: Config, units: dict[str, str]
) -> None:
    """`tipline metrics` connected as the runtime role, which reads and writes every table.
    Its own role reads the columns a scrape counts (events' and tips' times, each OA's token
    state) and writes nothing."""
    runtime.transit.rotate()
    intake = create_app(config, staff_ui=False).test_client()
    install(runtime)
    raw = event(text="Có đánh bạc ở chợ", msg_id="roles-metrics")
    assert intake.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    run_worker(runtime, burst=True)

    scraper = Runtime(config.with_overrides(database_url=roles.url(roles.metrics)))
    try:
        body = generate_latest(registry_for(scraper)).decode()
    finally:
        scraper.engine.dispose()
    assert "tipline_scrape_errors 0.0" in body, body
    assert "tipline_intake_events_total 1.0" in body, body
    assert "tipline_pipeline_undispatched_tips 0.0" in body, body

    with roles.connect(roles.metrics) as conn:
        for table in ("messages", "key_grants", "officers", "audit_events", "reply_addresses"):
            _refused(conn, f"SELECT * FROM {table}")  # noqa: S608 - fixed names
        for column in ("receipt_code", "informant_alias", "sealed_routing", "unit_id"):
            _refused(conn, f"SELECT {column} FROM tips")  # noqa: S608 - fixed names
        _refused(conn, "SELECT sealed_event FROM inbound_events")
        _refused(conn, "SELECT dedup_key FROM inbound_events")
        # An OA's token state, not its row: the tokens sealed to the relay key, the last error's
        # text and the units' table are the runtime role's (tipline.migrate.METRICS_TABLES).
        for column in ("sealed_tokens", "last_error", "token_error", "oa_id"):
            _refused(conn, f"SELECT {column} FROM official_accounts")  # noqa: S608 - fixed names
        _refused(conn, "SELECT * FROM units")
        _refused(conn, "UPDATE official_accounts SET last_error = NULL")
        _refused(conn, "DELETE FROM inbound_events")
        _refused(
            conn, "INSERT INTO outbox (queue, job, ref, created_at) VALUES ('a','b','c',now())"
        )
