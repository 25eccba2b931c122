"""What every command needs: the process's runtime, and a key holder's unit keys."""

from __future__ import annotations

import click
from sqlalchemy import select

from keys import PrivateKey, WrongSecret
from tipline.config import Config
from tipline.keychain import unit_keys_of, unlock_officer_key
from tipline.models import Officer
from tipline.runtime import Runtime, install


def runtime() -> Runtime:
    """The runtime of this command, built from the environment (CONTRACT.md)."""
    return install(Runtime(Config.from_env()))


def unlock_unit_keys(rt: Runtime, username: str, password: str) -> dict[int, PrivateKey]:
    """The unit keys ``username`` holds, unlocked with their password; a clear error if not."""
    with rt.sessions() as session:
        holder = session.scalars(select(Officer).where(Officer.username == username)).one_or_none()
        if holder is None:
            raise click.ClickException(f"no account {username}")
        try:
            key = unlock_officer_key(holder, password)
        except WrongSecret as exc:
            raise click.ClickException("wrong password") from exc
        return dict(unit_keys_of(session, holder, key))
