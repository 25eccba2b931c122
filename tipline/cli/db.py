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
    """Apply Alembic migrations."""
    from tipline.migrate import upgrade

    upgrade(Config.from_env().database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert Alembic migrations to REVISION."""
    from tipline.migrate import downgrade

    downgrade(Config.from_env().database_url, revision)
    click.echo(f"database at {revision}")
