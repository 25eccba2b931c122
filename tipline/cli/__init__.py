"""The `tipline` command line (CONTRACT.md): one module per command group.

``main`` only gathers the groups; each module builds its commands on :mod:`tipline.cli.context`
and nothing else of this package.
"""

from __future__ import annotations

import logging

import click

from tipline.cli.audit import audit
from tipline.cli.db import db
from tipline.cli.officers import duty, officers
from tipline.cli.routing import route
from tipline.cli.server import demo, metrics, serve, worker
from tipline.cli.unit_keys import keys
from tipline.cli.units import units
from tipline.cli.zalo import zalo
from tipline.files import keep_files_private
from tipline.logs import configure, start_run


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Tipline: anonymous crime-tip intake and triage."""
    keep_files_private()  # before any command writes (the demo's and serve's children inherit it)
    # JSON lines with time, level and this run's id (tipline.logs); no tip id reaches them.
    configure(logging.INFO if verbose else logging.WARNING)
    start_run("cli")


for command in (demo, serve, worker, metrics, db, units, officers, duty, keys, route, audit, zalo):
    main.add_command(command)

__all__ = ["main"]
