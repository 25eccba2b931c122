"""Alembic migrations, driven from code so `tipline db upgrade` needs no alembic.ini."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, create_engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "heads", roles: DatabaseRoles | None = None) -> None:
    """Migrate to ``revision`` as the owner, then grant ``roles`` their privileges."""
    command.upgrade(alembic_config(database_url), revision)
    if roles is not None and (roles.runtime or roles.intake):
        apply_roles(database_url, roles)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


# --- PostgreSQL roles: the owner migrates, the tiers run as roles that own nothing ----------

# What the intake tier's role may touch: the webhook's one write (tipline.intake.recording)
# and the public keys it seals to. Nothing else: no tip, no key grant, no officer, no token.
INTAKE_INSERTS = ("inbound_events", "quarantined_events")
INTAKE_READS = {
    # With each key its certificate: the intake checks it before sealing (key_trust).
    "transit_epochs": ("id", "public_key", "key_certificate", "destroyed_at"),
    "official_accounts": ("oa_id", "unit_id"),
    "unit_keys": ("id", "unit_id", "version", "public_key", "key_certificate", "retired_at"),
    "alembic_version": ("version_num",),
    # The insert returns the new row's id (SQLAlchemy's implicit RETURNING), and ON CONFLICT
    # (dedup_key) DO NOTHING reads its target: keyed digests, which name nobody without the
    # alias key. Never the sealed event, its times or its tip.
    "inbound_events": ("id", "dedup_key"),
    "quarantined_events": ("id", "digest"),
}
# What `tipline metrics` reads (tipline.metrics): the times of stored events and tips, which
# it counts and ages, and the OAs with their units (token states; the tokens are sealed to the
# relay key it does not hold). No tip content, alias, receipt code, message, officer or audit
# event, and no write.
METRICS_READS = {
    "inbound_events": ("id", "received_at", "processed_at", "transit_lost_at", "expand_failed_at"),
    "tips": ("id", "created_at", "dispatched_at", "shredded_at"),
    "quarantined_events": ("id", "received_at"),
    "alembic_version": ("version_num",),
}
# Whole relations it reads: each OA's token state, not the OA's row (migration 0031, a view).
METRICS_TABLES = ("oa_token_facts",)
# The table privileges a runtime role may receive; never TRUNCATE, REFERENCES or TRIGGER.
RUNTIME_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class DatabaseRoles:
    """The PostgreSQL roles the tiers connect as (``TIPLINE_DB_RUNTIME_ROLE``,
    ``TIPLINE_DB_INTAKE_ROLE``, ``TIPLINE_DB_METRICS_ROLE``); None: that tier connects as the
    owner (not recommended)."""

    runtime: str | None = None
    intake: str | None = None
    metrics: str | None = None


def grant_roles(connection: Connection, roles: DatabaseRoles) -> list[str]:
    """Give the roles exactly their privileges on every table; the statements run.

    Run by the owner after each upgrade, so tables added by later migrations are covered and
    the grants are the same however often it runs. The runtime role gets on each table what
    the owner itself has kept of SELECT, INSERT, UPDATE and DELETE: the audit tables' owner
    revoked its own UPDATE and DELETE (0003, 0013), so the runtime role has them neither.
    Owning nothing, it can drop no trigger, alter no table and truncate nothing. The intake
    role inserts inbound and quarantined events and reads the public keys it seals to; the
    metrics role reads what a scrape counts (METRICS_READS) and writes nothing.
    """
    if connection.dialect.name != "postgresql":
        return []
    quote = connection.dialect.identifier_preparer.quote
    tables = list(
        connection.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tableowner = current_user ORDER BY tablename"
            )
        ).scalars()
    )
    done: list[str] = []

    def run(statement: str) -> None:
        connection.execute(text(statement))
        done.append(statement)

    def grant_columns(reads: dict[str, tuple[str, ...]], role: str) -> None:
        for table, columns in reads.items():
            names = ", ".join(quote(column) for column in columns)
            run(f"GRANT SELECT ({names}) ON {quote(table)} TO {role}")

    schema = quote(str(connection.execute(text("SELECT current_schema()")).scalar()))
    for role in (roles.runtime, roles.intake, roles.metrics):
        if role is None:
            continue
        run(f"GRANT USAGE ON SCHEMA {schema} TO {quote(role)}")
        run(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {quote(role)}")
        run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {quote(role)}")
    if roles.runtime is not None:
        runtime = quote(roles.runtime)
        for table in tables:
            kept = [
                privilege
                for privilege in RUNTIME_PRIVILEGES
                if connection.execute(
                    text("SELECT has_table_privilege(current_user, :t, :p)"),
                    {"t": table, "p": privilege},
                ).scalar()
            ]
            if table == "alembic_version":
                kept = ["SELECT"]  # the schema's version is the owner's to change
            if kept:
                run(f"GRANT {', '.join(kept)} ON {quote(table)} TO {runtime}")
        run(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}")
    if roles.intake is not None:
        intake = quote(roles.intake)
        for table in INTAKE_INSERTS:
            run(f"GRANT INSERT ON {quote(table)} TO {intake}")
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
            ).scalar()
            if sequence:
                run(f"GRANT USAGE ON SEQUENCE {sequence} TO {intake}")
        grant_columns(INTAKE_READS, intake)
    if roles.metrics is not None:
        metrics = quote(roles.metrics)
        grant_columns(METRICS_READS, metrics)
        for table in METRICS_TABLES:
            run(f"GRANT SELECT ON {quote(table)} TO {metrics}")
    return done


def apply_roles(database_url: str, roles: DatabaseRoles) -> list[str]:
    """:func:`grant_roles` in one transaction on ``database_url`` (the owner's)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            return grant_roles(connection, roles)
    finally:
        engine.dispose()
