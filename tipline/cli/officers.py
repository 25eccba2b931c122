"""`tipline officers add` and `tipline duty`: staff accounts and who is on duty."""

from __future__ import annotations

import click

from tipline.cli.context import runtime, unlock_unit_keys
from tipline.models import Role
from tipline.units import UnitError


@click.group()
def officers() -> None:
    """Staff accounts."""


@officers.command("add")
@click.argument("username")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role])
)
@click.option("--unit", "unit_code", default=None, help="Unit code (officers and commanders).")
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="TIPLINE_NEW_PASSWORD",
    help="Prompted when not given.",
)
@click.option("--granted-by", default=None, help="A holder of the unit key who grants it now.")
@click.option(
    "--grantor-password", default=None, envvar="TIPLINE_GRANTOR_PASSWORD", hide_input=True
)
def officers_add(
    username: str,
    role: str,
    unit_code: str | None,
    display_name: str | None,
    password: str,
    granted_by: str | None,
    grantor_password: str | None,
) -> None:
    """Create an account; prints its one-time recovery code and TOTP secret."""
    from tipline.officers import add_officer

    rt = runtime()
    grantor_keys = None
    if granted_by:
        secret = grantor_password or click.prompt(f"password of {granted_by}", hide_input=True)
        grantor_keys = unlock_unit_keys(rt, granted_by, secret)
    try:
        with rt.sessions() as session, session.begin():
            new = add_officer(
                session,
                username=username,
                display_name=display_name or username,
                role=role,
                unit_code=unit_code,
                password=password,
                cost=rt.config.kdf_cost,
                grantor_keys=grantor_keys,
            )
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"account {username} ({role}) created")
    click.echo(f"recovery code (shown once, keep it offline): {new.recovery_code}")
    click.echo(f"TOTP secret (enrol in an authenticator app): {new.totp_secret}")
    if new.key_pending:
        click.echo("unit key pending: granted at the next login of a key holder of the unit")


@click.command("duty")
@click.argument("username")
@click.argument("state", type=click.Choice(["on", "off"]))
def duty(username: str, state: str) -> None:
    """Mark USERNAME on or off duty (dispatched tips go to on-duty officers)."""
    from sqlalchemy import select

    from tipline.models import Officer
    from tipline.routing.duty import set_on_duty

    rt = runtime()
    with rt.sessions() as session, session.begin():
        officer = session.scalars(select(Officer).where(Officer.username == username)).one_or_none()
        if officer is None:
            raise click.ClickException(f"no account {username}")
        try:
            set_on_duty(session, officer, state == "on")
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{username}: {'on' if state == 'on' else 'off'} duty")
