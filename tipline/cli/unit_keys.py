"""`tipline keys rotate|public`: unit key versions and the service keys' public halves."""

from __future__ import annotations

import click

from tipline.cli.context import runtime, unlock_unit_keys
from tipline.units import UnitError


@click.group()
def keys() -> None:
    """Unit keys."""


@keys.command("rotate")
@click.option("--unit", "unit_code", required=True)
@click.option("--reseal-as", default=None, help="A key holder whose login re-seals old tip grants.")
@click.option("--password", default=None, envvar="TIPLINE_RESEAL_PASSWORD", hide_input=True)
def keys_rotate(unit_code: str, reseal_as: str | None, password: str | None) -> None:
    """New key version for UNIT; with --reseal-as, move old tip grants to it."""
    from tipline.units import rotate_key

    rt = runtime()
    opener = None
    if reseal_as:
        secret = password or click.prompt(f"password of {reseal_as}", hide_input=True)
        opener = unlock_unit_keys(rt, reseal_as, secret)
    try:
        with rt.sessions() as session, session.begin():
            unit_key, moved = rotate_key(session, unit_code, opener)
            version = unit_key.version
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{unit_code}: key version {version}; {moved} tip grants re-sealed")


@keys.command("certify-existing")
def keys_certify_existing() -> None:
    """Once, after upgrading to certified public keys (migration 0022), with the services
    stopped: certify every stored public key that has no certificate yet."""
    from tipline.audit import actions, record
    from tipline.keychain import certify_existing

    rt = runtime()
    with rt.sessions() as session, session.begin():
        counts = certify_existing(session)
        record(
            session,
            action=actions.KEY_CREATE,
            detail={"certified_existing": str(sum(counts.values()))},
        )
    click.echo(", ".join(f"{name}: {count} certified" for name, count in counts.items()))


@keys.command("public")
def keys_public() -> None:
    """Print the relay key's public half, as a setting for the web and intake tiers.

    They seal OA tokens to it and open nothing with it (deploy/). Transit keys are not
    configuration: the workers make them and keep them in the volatile key store.
    """
    from tipline.config import Config, public_halves

    for name, value in public_halves(Config.from_env().secrets).items():
        click.echo(f"{name}={value}")
