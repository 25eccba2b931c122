"""`tipline audit verify [--from-checkpoint FILE]` and `tipline audit checkpoint --out FILE`.

Both record what they did (AUDIT_VERIFY, AUDIT_CHECKPOINT) after the fact, as the system:
the CLI runs on the server with no staff login. Verification itself only reads.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from tipline.audit import actions
from tipline.audit.chain import (
    ChainBrokenError,
    VerifyResult,
    record,
    verify_chain,
    write_checkpoint,
)
from tipline.cli.context import (
    runtime,
)
from tipline.models import (
    Outcome,
)
from tipline.runtime import (
    Runtime,
)

log = logging.getLogger(__name__)


def _note(rt: Runtime, action: str, outcome: Outcome, detail: dict[str, str]) -> None:
    """Record the verification or checkpoint itself; a read-only database only warns."""
    try:
        with rt.sessions() as session, session.begin():
            record(session, action=action, outcome=outcome, detail=detail)
    except SQLAlchemyError as exc:
        log.warning("could not record %s: %s", action, exc.__class__.__name__)


@click.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option(
    "--from-checkpoint",
    "checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A checkpoint file: the chain must still pass through its signed head.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(checkpoint: Path | None, as_json: bool) -> None:
    """Exit 0 when the chain is intact; non-zero naming the first bad event otherwise."""
    rt = runtime()
    with rt.sessions() as session:
        result: VerifyResult = verify_chain(
            session,
            checkpoint,
            trusted_key=rt.config.secrets.audit_signing_key.verify_key if checkpoint else None,
        )
    detail = {"checked": str(result.checked)}
    if checkpoint is not None:
        detail["checkpoint_seq"] = str(result.checkpoint_seq)
    if result.first_bad_seq is not None:
        detail["first_bad_seq"] = str(result.first_bad_seq)
    _note(rt, actions.AUDIT_VERIFY, Outcome.OK if result.ok else Outcome.BROKEN, detail)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "checked": result.checked,
                    "head_seq": result.head_seq,
                    "head_hash": result.head_hash,
                    "first_bad_seq": result.first_bad_seq,
                    "first_bad_id": result.first_bad_id,
                    "reason": result.reason,
                    "checkpoint_seq": result.checkpoint_seq,
                }
            )
        )
    else:
        click.echo(result.describe(), err=not result.ok)
    sys.exit(0 if result.ok else 1)


@audit.command("checkpoint")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed checkpoint (never overwritten).",
)
def checkpoint(out: Path) -> None:
    """Verify the chain, then write a signed checkpoint of its head to OUT."""
    rt = runtime()
    key = rt.config.secrets.audit_signing_key
    try:
        with rt.sessions() as session:
            made = write_checkpoint(session, key, out)
    except ChainBrokenError as exc:
        click.echo(f"no checkpoint written: {exc}", err=True)
        sys.exit(1)
    except FileExistsError as exc:
        raise click.ClickException(f"{out} exists; a checkpoint is never overwritten") from exc
    _note(rt, actions.AUDIT_CHECKPOINT, Outcome.OK, {"seq": str(made.seq)})
    click.echo(f"checkpoint of event #{made.seq} written to {out} (key {made.fingerprint})")
