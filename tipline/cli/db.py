"""`tipline db upgrade|downgrade`: the schema, by Alembic."""

from __future__ import annotations

import click

from tipline.config import Config


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations (as the database's owner), then grant the tiers' roles
    (TIPLINE_DB_RUNTIME_ROLE, TIPLINE_DB_INTAKE_ROLE, TIPLINE_DB_METRICS_ROLE) their
    privileges."""
    from tipline.migrate import DatabaseRoles, upgrade

    config = Config.from_env()
    roles = DatabaseRoles(
        runtime=config.db_runtime_role,
        intake=config.db_intake_role,
        metrics=config.db_metrics_role,
    )
    upgrade(config.database_url, revision, roles)
    click.echo(f"database at {revision}")
    for name, role in vars(roles).items():
        if role:
            click.echo(f"granted the {name} role {role!r} its privileges")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert Alembic migrations to REVISION."""
    from tipline.migrate import downgrade

    downgrade(Config.from_env().database_url, revision)
    click.echo(f"database at {revision}")
