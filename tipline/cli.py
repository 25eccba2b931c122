"""The `tipline` command line (CONTRACT.md)."""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from tipline.config import Config
from tipline.models import Role, UnitLevel
from tipline.runtime import Runtime, install
from tipline.units import UnitError


def _runtime() -> Runtime:
    return install(Runtime(Config.from_env()))


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Tipline: anonymous crime-tip intake and triage."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run web, worker and Zalo simulator on embedded defaults with demo data."""
    from tipline.demo import run_demo

    sys.exit(run_demo(host, port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers")
@click.option("--intake-only", is_flag=True, help="Only the webhook and health check.")
def serve(host: str, port: int, workers: int, intake_only: bool) -> None:
    """Run the web app under gunicorn."""
    config = Config.from_env()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"{host}:{port}",
        # The default control socket is one per user, shared by every gunicorn on the machine.
        "--no-control-socket",
        "--access-logfile",
        "-",
        "--access-logformat",
        '%(t)s "%(m)s %(U)s" %(s)s %(L)ss',  # paths only: search words stay out of logs
        "tipline.intake.wsgi:app" if intake_only else "tipline.wsgi:app",
    ]
    if config.simulator:
        # Zalo's API takes `access_token` and `secret_key` headers, which gunicorn drops by
        # default (underscores); the simulator must see them as Zalo's servers would. Only in
        # simulator mode: Tipline's own routes never read a header with an underscore.
        args[-1:-1] = ["--header-map", "dangerous"]
    if config.redis_url:
        os.execv(sys.executable, args)  # noqa: S606 - gunicorn takes over this process  # nosec B606
    # Embedded Redis lives as long as this process: start it, then run gunicorn as a child.
    import subprocess

    from tipline.redis_conn import embedded_redis_url

    env = {**os.environ, "TIPLINE_REDIS_URL": embedded_redis_url(config.data_dir)}
    sys.exit(subprocess.call(args, env=env))  # noqa: S603 - our gunicorn command line  # nosec B603


@main.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with scheduler, outbox relay and sweeper)."""
    from tipline.jobs.worker import run_worker

    run_worker(_runtime(), list(queues) or None, burst=burst)


@main.group()
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


@main.group()
def units() -> None:
    """Police units and their OAs."""


@units.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--level", required=True, type=click.Choice([level.value for level in UnitLevel]))
@click.option("--parent", "parent_code", default=None, help="Code of the parent unit.")
def units_add(code: str, name: str, level: str, parent_code: str | None) -> None:
    """Add a unit with CODE (e.g. v2025:32134) and NAME."""
    from tipline.units import add_unit

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            unit = add_unit(session, code=code, name=name, level=level, parent_code=parent_code)
            keyed = unit.current_key is not None
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {code}" + ("" if keyed else " (its key is created with its first officer)"))


@units.command("set-oa")
@click.argument("code")
@click.argument("oa_id")
def units_set_oa(code: str, oa_id: str) -> None:
    """Attach the Zalo OA OA_ID to unit CODE."""
    from tipline.units import set_oa

    rt = _runtime()
    try:
        with rt.sessions() as session, session.begin():
            set_oa(session, code, oa_id)
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"OA {oa_id} → {code}")


@units.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON list of units.")
def units_list(as_json: bool) -> None:
    """List units."""
    from tipline.units import list_units

    rt = _runtime()
    with rt.sessions() as session:
        rows = list_units(session)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        oas = ", ".join(row["oa_ids"]) or "-"
        click.echo(f"{row['code']:<14} {row['level']:<9} {row['name']}  OA: {oas}")


@main.group()
def officers() -> None:
    """Staff accounts."""


def _unlock_grantor(rt: Runtime, username: str, password: str) -> dict[int, object]:
    from sqlalchemy import select

    from keys import WrongSecret
    from tipline.keychain import unit_keys_of, unlock_officer_key
    from tipline.models import Officer

    with rt.sessions() as session:
        grantor = session.scalars(select(Officer).where(Officer.username == username)).one_or_none()
        if grantor is None:
            raise click.ClickException(f"no account {username}")
        try:
            key = unlock_officer_key(grantor, password)
        except WrongSecret as exc:
            raise click.ClickException("wrong password") from exc
        return dict(unit_keys_of(session, grantor, key))


@officers.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
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
    from typing import cast

    from keys import PrivateKey
    from tipline.officers import add_officer

    rt = _runtime()
    grantor_keys = None
    if granted_by:
        secret = grantor_password or click.prompt(f"password of {granted_by}", hide_input=True)
        grantor_keys = cast(dict[int, PrivateKey], _unlock_grantor(rt, granted_by, secret))
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


@main.group()
def keys() -> None:
    """Unit keys."""


@keys.command("rotate")
@click.option("--unit", "unit_code", required=True)
@click.option("--reseal-as", default=None, help="A key holder whose login re-seals old tip grants.")
@click.option("--password", default=None, envvar="TIPLINE_RESEAL_PASSWORD", hide_input=True)
def keys_rotate(unit_code: str, reseal_as: str | None, password: str | None) -> None:
    """New key version for UNIT; with --reseal-as, move old tip grants to it."""
    from typing import cast

    from keys import PrivateKey
    from tipline.units import rotate_key

    rt = _runtime()
    opener = None
    if reseal_as:
        secret = password or click.prompt(f"password of {reseal_as}", hide_input=True)
        opener = cast(dict[int, PrivateKey], _unlock_grantor(rt, reseal_as, secret))
    try:
        with rt.sessions() as session, session.begin():
            unit_key, moved = rotate_key(session, unit_code, opener)
            version = unit_key.version
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{unit_code}: key version {version}; {moved} tip grants re-sealed")


@keys.command("public")
def keys_public() -> None:
    """Print the service keys' public halves, as settings for the web and intake tiers.

    Those tiers only seal to the transit and relay keys; given these instead of the private
    keys, a compromised web machine opens no queued event and no reply address (deploy/).
    """
    from tipline.config import Config, public_halves

    for name, value in public_halves(Config.from_env().secrets).items():
        click.echo(f"{name}={value}")


def _add_zalo() -> None:
    from tipline.zalo.cli import zalo

    main.add_command(zalo)
    from tipline.audit.cli import audit

    main.add_command(audit)
    from tipline.routing.cli import duty, route, units_import

    main.add_command(route)
    main.add_command(duty)
    units.add_command(units_import)


_add_zalo()

if __name__ == "__main__":
    main()
