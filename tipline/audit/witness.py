"""Witnessed checkpoints: the chain's head, signed and shipped where the database cannot write.

Whoever owns the audit tables (PostgreSQL's table owner, SQLite's file owner) can drop the
append-only triggers, delete the newest events, or recompute every hash: the chain alone then
verifies. What they cannot change is a signed checkpoint kept elsewhere. So checkpoints are
made automatically (every ``checkpoint_events`` events or ``checkpoint_minutes`` minutes, by
the workers' relay loop) and appended to a **witness**:

- an append-only file (``TIPLINE_AUDIT_WITNESS``; opened ``O_APPEND``, one JSON line per
  record, ``chattr +a`` or owned by another user in production: docs/operations.md), and/or
- syslog (``TIPLINE_AUDIT_SYSLOG``: ``/dev/log``, or ``udp://host:514`` / ``tcp://host:514``
  for a remote collector, another machine the database's owners do not administer).

:func:`verify_witnessed` checks the chain through **every** witnessed hash: a rewritten
history no longer passes them, a deleted tail ends before the latest, and missing triggers are
named. A restore from a backup looks like a deleted tail; it is told apart by a **restore
record** (:func:`mark_restore`, ``tipline audit mark-restore``), signed with the same key and
witnessed, which the operator writes after restoring: checkpoints witnessed before it above the
restored history's last witnessed event are then reported as lost with the restore, and the
restored chain must still pass every witnessed hash it holds. Without the signing key (a
configuration secret) and write access to the witness, no one can fake a restore.
"""

from __future__ import annotations

import fcntl
import logging
import logging.handlers
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from keys import SigningKey, VerifyKey
from tipline.audit import actions
from tipline.audit.chain import VerifyResult, record, verify_chain
from tipline.audit.checkpoint import RESTORE, Checkpoint, CheckpointError
from tipline.models import AuditHead, Outcome
from tipline.models.audit_head import HEAD_ROW_ID

log = logging.getLogger(__name__)

# The append-only triggers of migrations 0003 and 0013, by backend.
PROTECTION = {
    "sqlite": (
        "audit_events_no_update",
        "audit_events_no_delete",
        "audit_head_forward_only",
        "audit_head_no_delete",
    ),
    "postgresql": (
        "audit_events_append_only",
        "audit_events_no_truncate",
        "audit_head_forward_only",
        "audit_head_no_truncate",
    ),
}


class WitnessError(ValueError):
    """The witness cannot be read, holds a record not signed by this installation, or
    contradicts itself."""


@dataclass
class _Seen:
    """What :meth:`Witness.records_appended` verified of the file so far."""

    file: tuple[int, int] | None = None  # (device, inode)
    trusted: bytes = b""
    offset: int = 0  # the end of the last whole line verified
    lines: int = 0  # how many lines that was (for the line numbers of errors)
    records: list[Checkpoint] = field(default_factory=list)
    reading: Reading | None = None  # read(records), kept while nothing is appended


@dataclass(frozen=True)
class Witness:
    """Where checkpoints go: an append-only file, a syslog target, or both."""

    path: Path | None = None
    syslog: str | None = None
    _seen: _Seen = field(default_factory=_Seen, init=False, compare=False, repr=False)

    @property
    def configured(self) -> bool:
        return self.path is not None or self.syslog is not None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One checkpoint maker at a time on this machine (an advisory lock beside the file)."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, checkpoint: Checkpoint) -> None:
        line = checkpoint.to_json(indent=None) + "\n"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: every write lands at the end, whatever the offset; with `chattr +a`
            # nothing else is possible, not even for the file's owner.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.syslog is not None:
            _send_syslog(self.syslog, line.strip())

    def records(self, trusted_key: VerifyKey) -> list[Checkpoint]:
        """Every record of the file in order, each checked against ``trusted_key``."""
        if self.path is None or not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise WitnessError(f"cannot read the witness {self.path}: {exc}") from exc
        return _checked(lines, trusted_key, first_line=1)

    def records_appended(self, trusted_key: VerifyKey) -> list[Checkpoint]:
        """As :meth:`records`, but reading and verifying only what was appended since this
        object's last call: the workers' look every 15 s at whether a checkpoint is due.

        Reading the whole file each time cost a signature check per record, and the file
        grows by a record a checkpoint (issue 15). The file is append-only; one replaced or
        shortened is read again from the start. An earlier record edited in place, size and
        inode kept, is not seen here: ``tipline audit verify`` and every checkpoint made
        (:func:`make_checkpoint`) read the whole file."""
        if self.path is None:
            return []
        seen = self._seen
        try:
            with self.path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                file = (status.st_dev, status.st_ino)
                if (file, trusted_key.raw) != (seen.file, seen.trusted) or (
                    status.st_size < seen.offset
                ):
                    seen.file, seen.trusted, seen.reading = file, trusted_key.raw, None
                    seen.offset, seen.lines, seen.records = 0, 0, []
                handle.seek(seen.offset)
                appended = handle.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise WitnessError(f"cannot read the witness {self.path}: {exc}") from exc
        consumed = appended.rfind(b"\n") + 1  # whole lines; 0 when none ended
        try:
            lines = appended[:consumed].decode("utf-8").splitlines()
            tail = appended[consumed:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WitnessError(f"cannot read the witness {self.path}: {exc}") from exc
        seen.records.extend(_checked(lines, trusted_key, first_line=seen.lines + 1))
        seen.offset += consumed
        seen.lines += len(lines)
        # A last line without its newline (a write under way) is checked, not remembered.
        return seen.records + _checked([tail], trusted_key, first_line=seen.lines + 1)

    def reading_appended(self, trusted_key: VerifyKey) -> Reading:
        """:func:`read` of :meth:`records_appended`, folded again only when a record came."""
        records = self.records_appended(trusted_key)
        seen = self._seen
        if seen.reading is None or seen.reading.records != len(records):
            seen.reading = read(records)
        return seen.reading


def _checked(lines: list[str], trusted_key: VerifyKey, *, first_line: int) -> list[Checkpoint]:
    """The records of ``lines`` (numbered from ``first_line``), each signed by ``trusted_key``."""
    found = []
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            made = Checkpoint.from_json(line)
            made.check(trusted_key)
        except CheckpointError as exc:
            raise WitnessError(f"witness line {number}: {exc}") from exc
        found.append(made)
    return found


def _send_syslog(target: str, message: str) -> None:
    if target.startswith(("udp://", "tcp://")):
        host, _, port = target[6:].rpartition(":")
        kind = socket.SOCK_DGRAM if target.startswith("udp") else socket.SOCK_STREAM
        handler = logging.handlers.SysLogHandler(address=(host, int(port)), socktype=kind)
    else:
        handler = logging.handlers.SysLogHandler(address=target)
    handler.ident = "tipline-audit: "
    try:
        entry = logging.LogRecord(
            "tipline.audit.witness", logging.WARNING, "", 0, message, (), None
        )
        handler.emit(entry)
    finally:
        handler.close()


@dataclass(frozen=True)
class Restore:
    """A witnessed restore: the chain was put back to a backup at ``at``."""

    at: datetime
    seq: int  # the restored chain's head when the record was made
    since: int  # the last witnessed event the restored chain held
    lost_to: int | None  # the newest witnessed event lost with the restore
    lost_at: datetime | None  # when that event was witnessed


@dataclass(frozen=True)
class Reading:
    """What the witness says the chain must hold."""

    pins: dict[int, str] = field(default_factory=dict)
    latest: Checkpoint | None = None
    restores: tuple[Restore, ...] = ()
    records: int = 0


def read(records: list[Checkpoint]) -> Reading:
    """Live pins (seq → hash) from the records in file order; restores drop what they lost."""
    live: list[Checkpoint] = []
    restores: list[Restore] = []
    for made in records:
        if made.kind == RESTORE:
            since = made.since or 0
            lost = [c for c in live if c.seq > since]
            newest = max(lost, key=lambda c: c.seq, default=None)
            restores.append(
                Restore(
                    at=made.at,
                    seq=made.seq,
                    since=since,
                    lost_to=newest.seq if newest else None,
                    lost_at=newest.at if newest else None,
                )
            )
            live = [c for c in live if c.seq <= since]
        live.append(made)
    pins: dict[int, str] = {}
    for made in live:
        if pins.setdefault(made.seq, made.hash) != made.hash:
            raise WitnessError(f"two witnessed records disagree about event #{made.seq}")
    latest = max(live, key=lambda c: (c.seq, c.at), default=None)
    return Reading(pins, latest, tuple(restores), len(records))


def missing_protection(session: Session) -> list[str]:
    """The append-only triggers that are missing (or disabled, on PostgreSQL)."""
    dialect = session.connection().dialect.name
    wanted = PROTECTION.get(dialect, ())
    if dialect == "sqlite":
        found = set(session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
    elif dialect == "postgresql":
        found = set(
            session.scalars(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                    "AND tgrelid IN ('audit_events'::regclass, 'audit_head'::regclass)"
                )
            )
        )
    else:
        return []
    return [name for name in wanted if name not in found]


@dataclass(frozen=True)
class WitnessedResult:
    """:func:`verify_witnessed`'s verdict: the chain's, and what the witness added."""

    chain: VerifyResult
    reading: Reading
    missing_triggers: tuple[str, ...] = ()
    witness_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.missing_triggers and self.witness_problem is None

    @property
    def latest(self) -> Checkpoint | None:
        return self.reading.latest

    def age(self, now: datetime | None = None) -> timedelta | None:
        if self.latest is None:
            return None
        return (now or datetime.now(UTC)) - self.latest.at

    def describe(self) -> str:
        lines = []
        if self.witness_problem is not None:
            lines.append(f"audit witness BROKEN: {self.witness_problem}")
        elif self.missing_triggers:
            lines.append(
                "audit chain BROKEN: the append-only triggers are missing or disabled: "
                + ", ".join(self.missing_triggers)
            )
        if not self.chain.ok or not lines:
            lines.append(self.chain.describe())
        latest = self.latest
        if latest is None:
            lines.append("no witnessed checkpoint yet: a rewritten history cannot be excluded")
        else:
            lines.append(
                f"witnessed checkpoint: event #{latest.seq} at {latest.at.isoformat()} "
                f"({self.reading.records} witness records)"
            )
        for made in self.reading.restores:
            lost = (
                f"events #{made.since + 1}…#{made.lost_to} (witnessed "
                f"{made.lost_at.isoformat() if made.lost_at else '?'}) were lost with it"
                if made.lost_to is not None
                else "nothing witnessed was lost"
            )
            lines.append(f"restored from a backup at {made.at.isoformat()}: {lost}")
        if (
            not self.chain.ok
            and self.witness_problem is None
            and self.chain.reason is not None
            and "ends before the checkpoint" in self.chain.reason
        ):
            lines.append(
                "if the database was restored from a backup, run `tipline audit mark-restore` "
                "(docs/operations.md); otherwise events were deleted"
            )
        return "\n".join(lines)


def verify_witnessed(session: Session, witness: Witness, trusted_key: VerifyKey) -> WitnessedResult:
    """The whole chain, through every witnessed hash, with its triggers in place."""
    try:
        reading = read(witness.records(trusted_key))
    except WitnessError as exc:
        chain = verify_chain(session)
        return WitnessedResult(chain, Reading(), witness_problem=str(exc))
    chain = verify_chain(session, pins=reading.pins)
    if reading.latest is not None:
        chain = replace(chain, checkpoint_seq=reading.latest.seq)
    return WitnessedResult(chain, reading, tuple(missing_protection(session)))


def _sign(
    key: SigningKey, seq: int, hash_: str, *, kind: str = "checkpoint", since: int | None = None
) -> Checkpoint:
    at = datetime.now(UTC)
    return Checkpoint(
        seq=seq,
        hash=hash_,
        at=at,
        public_key=key.verify_key.raw,
        signature=key.sign(Checkpoint.signed_bytes(seq, hash_, at, kind, since)),
        kind=kind,
        since=since,
    )


class NotWitnessed(Exception):
    """The chain does not verify against the witness: no checkpoint is signed over it."""

    def __init__(self, result: WitnessedResult) -> None:
        super().__init__(result.describe())
        self.result = result


def make_checkpoint(session: Session, witness: Witness, key: SigningKey) -> Checkpoint:
    """Verify the events since the latest witnessed checkpoint, sign the head and witness it.

    Only the newer events are walked (the older ones were verified when that checkpoint was
    made, and the walk links to its hash), so a million-event chain costs what is new.
    """
    with witness.locked():
        reading = read(witness.records(key.verify_key))
        latest = reading.latest
        start = (latest.seq, latest.hash) if latest is not None else None
        result = verify_chain(session, start=start)
        if not result.ok:
            raise NotWitnessed(WitnessedResult(result, reading))
        if latest is not None and result.head_seq == latest.seq:
            return latest
        made = _sign(key, result.head_seq, result.head_hash)
        witness.append(made)
        return made


def checkpoint_if_due(
    sessions: sessionmaker[Session],
    witness: Witness,
    key: SigningKey,
    *,
    every_events: int,
    every: timedelta,
) -> Checkpoint | None:
    """The relay loop's call: a checkpoint when ``every_events`` events or ``every`` time have
    passed since the latest witnessed one (and the chain moved). A chain that does not verify
    against the witness is logged as an error and gets no checkpoint."""
    if not witness.configured:
        return None
    try:
        reading = witness.reading_appended(key.verify_key)
    except WitnessError as exc:  # an alert, not a crash of the relay loop
        log.error("audit witness unusable, no checkpoint made: %s", exc)
        return None
    latest = reading.latest
    with sessions() as session:
        head = session.scalar(select(AuditHead.seq).where(AuditHead.id == HEAD_ROW_ID)) or 0
        if latest is not None:
            moved = head - latest.seq
            if moved == 0 or (moved < every_events and datetime.now(UTC) - latest.at < every):
                return None
        try:
            return make_checkpoint(session, witness, key)
        except (NotWitnessed, WitnessError) as exc:
            log.error("audit chain does not verify against the witness: %s", exc)
            return None


@dataclass(frozen=True)
class RestoreOutcome:
    record: Checkpoint | None  # None: nothing was lost, no restore record needed
    lost_from: int | None = None
    lost_to: int | None = None


def mark_restore(session: Session, witness: Witness, key: SigningKey) -> RestoreOutcome:
    """Record that the database was restored from a backup (run it before starting services).

    The restored chain must verify on its own and pass every witnessed hash up to the last one
    it still holds (``since``): otherwise it is not a restore of this history and nothing is
    written (:class:`NotWitnessed`). Witnessed records above ``since`` are then declared lost
    by a signed restore record, appended to the witness, and an AUDIT_RESTORE event.
    Commits ``session``.
    """
    with witness.locked():
        reading = read(witness.records(key.verify_key))
        own = verify_chain(session)
        if not own.ok:
            raise NotWitnessed(WitnessedResult(own, reading))
        held = {s: h for s, h in reading.pins.items() if s <= own.head_seq}
        through = verify_chain(session, pins=held)
        if not through.ok:
            raise NotWitnessed(WitnessedResult(through, reading))
        lost = sorted(s for s in reading.pins if s > own.head_seq)
        if not lost:
            return RestoreOutcome(None)
        since = max(held, default=0)
        event = record(
            session,
            action=actions.AUDIT_RESTORE,
            outcome=Outcome.OK,
            detail={
                "restored_seq": str(own.head_seq),
                "lost_from": str(since + 1),
                "lost_to": str(lost[-1]),
            },
        )
        session.commit()
        made = _sign(key, event.seq, event.hash, kind=RESTORE, since=since)
        witness.append(made)
        return RestoreOutcome(made, since + 1, lost[-1])
