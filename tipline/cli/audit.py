"""`tipline audit verify [--from-checkpoint FILE]`, `tipline audit checkpoint [--out FILE]`
and `tipline audit mark-restore`.

Each records what it did (AUDIT_VERIFY, AUDIT_CHECKPOINT, AUDIT_RESTORE) as the system: the
CLI runs on the server with no staff login. Verification itself only reads; it checks the
chain through every checkpoint of the witness (tipline.audit.witness) and the append-only
triggers.
"""

from __future__ import annotations

import json
import logging
import os
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
from tipline.audit.witness import (
    NotWitnessed,
    WitnessError,
    make_checkpoint,
    mark_restore,
    verify_witnessed,
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
    trusted = rt.config.secrets.audit_signing_key.verify_key
    with rt.sessions() as session:
        witnessed = verify_witnessed(session, rt.witness, trusted)
        result: VerifyResult = witnessed.chain
        if checkpoint is not None and witnessed.ok:
            result = verify_chain(
                session, checkpoint, trusted_key=trusted, pins=witnessed.reading.pins
            )
    ok = result.ok and witnessed.ok
    detail = {"checked": str(result.checked)}
    if checkpoint is not None:
        detail["checkpoint_seq"] = str(result.checkpoint_seq)
    if result.first_bad_seq is not None:
        detail["first_bad_seq"] = str(result.first_bad_seq)
    latest = witnessed.latest
    if latest is not None:
        detail["witnessed_seq"] = str(latest.seq)
    _note(rt, actions.AUDIT_VERIFY, Outcome.OK if ok else Outcome.BROKEN, detail)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": ok,
                    "witnessed_seq": latest.seq if latest is not None else None,
                    "witnessed_at": latest.at.isoformat() if latest is not None else None,
                    "missing_triggers": list(witnessed.missing_triggers),
                    "witness_problem": witnessed.witness_problem,
                    "restores": [
                        {"at": r.at.isoformat(), "lost_from": r.since + 1, "lost_to": r.lost_to}
                        for r in witnessed.reading.restores
                    ],
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
        text = witnessed.describe() if result is witnessed.chain else result.describe()
        click.echo(text, err=not ok)
    sys.exit(0 if ok else 1)


@audit.command("checkpoint")
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the signed checkpoint to this file (never overwritten).",
)
def checkpoint(out: Path | None) -> None:
    """Verify the chain, sign its head and append it to the witness (and to OUT)."""
    rt = runtime()
    key = rt.config.secrets.audit_signing_key
    if out is not None and out.exists():
        raise click.ClickException(f"{out} exists; a checkpoint is never overwritten")
    try:
        with rt.sessions() as session:
            if rt.witness.configured:
                made = make_checkpoint(session, rt.witness, key)
                if out is not None:
                    write_exclusive(out, made.to_json() + "\n")
            else:
                made = write_checkpoint(session, key, out)
    except (ChainBrokenError, NotWitnessed, WitnessError) as exc:
        click.echo(f"no checkpoint written: {exc}", err=True)
        sys.exit(1)
    except FileExistsError as exc:
        raise click.ClickException(f"{out} exists; a checkpoint is never overwritten") from exc
    _note(rt, actions.AUDIT_CHECKPOINT, Outcome.OK, {"seq": str(made.seq)})
    where = f"written to {out}" if out is not None else "witnessed"
    click.echo(f"checkpoint of event #{made.seq} {where} (key {made.fingerprint})")


def write_exclusive(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@audit.command("mark-restore")
def mark_restore_command() -> None:
    """After restoring the database from a backup (before starting the services): record the
    restore, signed and witnessed, so verification tells it apart from deleted events."""
    rt = runtime()
    key = rt.config.secrets.audit_signing_key
    try:
        with rt.sessions() as session:
            outcome = mark_restore(session, rt.witness, key)
    except (NotWitnessed, WitnessError) as exc:
        click.echo(f"not a restore of this audit history; nothing recorded:\n{exc}", err=True)
        sys.exit(1)
    if outcome.record is None:
        click.echo("the chain holds everything witnessed: no restore to record")
        return
    click.echo(
        f"restore recorded at event #{outcome.record.seq}: witnessed events "
        f"#{outcome.lost_from}…#{outcome.lost_to} were lost with the backup's age"
    )
