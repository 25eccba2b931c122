"""Appending events to the hash chain, and verifying it.

Design (DESIGN.md, Audit; invariant 5):

- **One chain, appends serialised.** Each append first locks and moves the head row. On
  PostgreSQL ``SELECT … FOR UPDATE`` takes the row lock, held to the end of the transaction, so
  concurrent writers queue on it and each sees the hash its predecessor committed; the new seq
  and link are computed in Python and written in one UPDATE. On SQLite a single
  ``UPDATE audit_head SET seq = seq + 1, hash = tipline_chain_hash(…) … RETURNING`` takes the
  database's single write lock and computes the link in the same statement (a read first
  would fail in a deferred transaction once another writer commits), which serialises the
  same way. The event is then inserted with one pre-built Core INSERT. The chain can
  therefore never fork, and a rolled-back action rolls back its event and the head together
  (the event is in the action's own transaction).
  **Batched appends** (:func:`deferred`): inside it, ``record()`` only remembers its events; at
  the end of the block they are appended together, the head locked and moved once. The
  pipeline (expansion, dispatch, sends) and the officers' work on tips append this way, just
  before their commit, so the head is held for one commit per batch of tips, not from the first
  event to commit of every tip (issue 15: with a head move per event the chain capped the
  system at 25 tips/s on PostgreSQL, ``benchmarks/audit_ceiling.py``).
  Partitioned chains with a combined head would let appends run in parallel too, but one total
  order is what an auditor reads and what a checkpoint signs, and with batched appends the one
  head no longer binds (measured in ``benchmarks/audit_ceiling.py``), so the simpler design
  stays until measurements say otherwise.
- **Links.** ``hash[n] = SHA-256(hash[n-1] || canonical(event n))`` (``keys.chain_hash``), with
  64 zero characters before event 1. Sequence numbers run 1, 2, 3 … without gaps and are part
  of the canonical form, so a deleted event leaves a gap, and an event moved or swapped no
  longer hashes to its stored link. The head row names the last event, so deleting the newest
  events is found too; ``tipline.audit.checkpoint`` signs the head (Ed25519) so that a history
  rewritten *with* recomputed hashes is found against a checkpoint kept elsewhere.
- **Canonical form.** The fields in a fixed order, separated by U+001F, NULL written as U+0000,
  the time as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (exactly SQLite's storage form, so
  verification needs no parsing). ``record()`` refuses control characters in every field, and
  verification checks the separator and NULL counts, so no two different rows share a canonical
  form. It is not JSON because verification must run ≥ 200,000 events/s in Python and a join
  is four times faster than ``json.dumps``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from keys import SigningKey, VerifyKey, chain_hash
from tipline.audit import actions
from tipline.audit.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from tipline.db import (
    IMMEDIATE,
    SHARED,
    SQLITE_CHAIN_HASH,
    register_sqlite_functions,
    write_session,
    write_transaction,
)
from tipline.models import AuditEvent, AuditHead, Officer, Outcome, Unit, new_public_id, utcnow
from tipline.models.audit_head import GENESIS_HASH, HEAD_ROW_ID

CANONICAL_VERSION = "tl-audit-1"
SEP = "\x1f"
NUL = "\x1e"  # stands for NULL; record() refuses control characters in values
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
# The chained columns after seq, in canonical order, then the stored hash.
CHAINED = (
    "public_id",
    "at",
    "actor_id",
    "actor_name",
    "actor_role",
    "unit_code",
    "action",
    "object_id",
    "outcome",
    "client_address",
    "detail_json",
)
_N_SEPARATORS = len(CHAINED) + 1  # version, seq, then each chained column
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_DETAIL_VALUE = 100
# Tests turn this off to run the portable verifier on SQLite and PostgreSQL as well.
_FAST = True


class AuditError(ValueError):
    """An event that must not be written (content-like detail, an informant's address…)."""


def format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def canonical(seq: int, values: Sequence[Any]) -> str:
    """The canonical form of an event: ``seq`` and the :data:`CHAINED` values in order."""
    return SEP.join([CANONICAL_VERSION, str(seq), *[NUL if v is None else v for v in values]])


def _clean(name: str, value: str | None, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if _CONTROL.search(value) or len(value) > limit:
        raise AuditError(f"audit {name}: control characters or longer than {limit}")
    return value


def _detail_json(detail: dict[str, str] | None) -> str | None:
    """Only short, fixed strings: a status, a unit code, a reason code; never content."""
    if not detail:
        return None
    for key, value in detail.items():
        if not isinstance(key, str) or not _DETAIL_KEY.match(key):
            raise AuditError(f"audit detail key {key!r}: lower-case identifier")
        if not isinstance(value, str) or len(value) > MAX_DETAIL_VALUE or _CONTROL.search(value):
            raise AuditError(f"audit detail {key}: a short single-line string")
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > 1000:
        raise AuditError("audit detail too long")
    return text


def record(
    session: Session | Connection,
    *,
    action: str,
    actor: Officer | None = None,
    object_id: str | None = None,
    unit: Unit | None = None,
    outcome: Outcome = Outcome.OK,
    client_address: str | None = None,
    detail: dict[str, str] | None = None,
    unit_code: str | None = None,
) -> AuditEvent:
    """Append one event in ``session``'s transaction; it commits or rolls back with the action.

    ``session`` may also be a Core ``Connection`` (the intake's hot path); the event is then
    inserted with Core and returned detached. ``actor`` None is the system (intake, jobs,
    CLI). Role and unit come from the actor unless ``unit`` is given (``unit_code``: the
    unit's code when no Unit is at hand, the batched dispatch). ``client_address`` is for
    staff only: an informant's or the system's address is never recorded. Outside a
    :func:`deferred` block, call it last in the action: from here to commit the transaction
    holds the chain's head lock.
    """
    if action not in actions.ALL:
        raise AuditError(f"unknown audit action {action!r} (add it to tipline.audit.actions)")
    if outcome not in Outcome:
        raise AuditError(f"unknown audit outcome {outcome!r}")
    if client_address is not None and actor is None:
        raise AuditError("client addresses are recorded for staff only")
    if unit is None and unit_code is None and actor is not None:
        unit = actor.unit
    at = utcnow()
    values = [
        new_public_id(),
        format_time(at),
        actor.public_id if actor is not None else None,
        actor.username if actor is not None else None,
        actor.role if actor is not None else None,
        unit.code if unit is not None else unit_code,
        action,
        _clean("object id", object_id, 64),
        outcome,
        _clean("client address", client_address, 64),
        _detail_json(detail),
    ]
    fields: dict[str, Any] = dict(zip(CHAINED, values, strict=True))
    fields["at"] = at
    pending = _DEFERRED.get()
    if pending is not None and pending.target is session:
        pending.events.append((values, fields))
        return AuditEvent(**fields)  # seq and hash are given when the batch is appended
    connection = session.connection() if isinstance(session, Session) else session
    if connection.get_execution_options().get(IMMEDIATE) == SHARED:
        # Locking the head here, before the transaction's row locks, could deadlock with a
        # transaction that holds such a row and waits for the head.
        raise AuditError("a row-locked transaction appends its events with audit.deferred")
    [(seq, link)] = _append(session, [values])
    connection.execute(_INSERT_EVENT, {"seq": seq, "hash": link, **fields})
    # Inserted with Core, so not in the session: a detached copy of what was written.
    return AuditEvent(seq=seq, hash=link, **fields)


def _append(session: Session | Connection, rows: list[list[Any]]) -> list[tuple[int, str]]:
    """Move the head over ``rows`` (each the CHAINED values): their (seq, link)."""
    connection = session.connection() if isinstance(session, Session) else session
    tails = [SEP + SEP.join([NUL if v is None else v for v in values]) for values in rows]
    if connection.dialect.name == "sqlite":
        return [_advance_sqlite(connection, tail) for tail in tails]
    # The row lock is held to commit: concurrent writers queue here and each reads the
    # hash its predecessor committed. One UPDATE writes the new head.
    seq, link = connection.execute(_LOCK_HEAD).one()
    links: list[tuple[int, str]] = []
    for tail in tails:
        seq += 1
        link = chain_hash(link, _CANONICAL_HEAD + str(seq) + tail)
        links.append((seq, link))
    connection.execute(_WRITE_HEAD, {"seq": seq, "hash": link})
    return links


@dataclass
class _Deferred:
    target: Session | Connection
    events: list[tuple[list[Any], dict[str, Any]]] = field(default_factory=list)


_DEFERRED: ContextVar[_Deferred | None] = ContextVar("tipline_audit_deferred", default=None)


@contextmanager
def deferred(session: Session | Connection) -> Iterator[None]:
    """Append the events ``record()`` writes in ``session`` inside the block together at its
    end (the ORM's pending writes flushed first), so the chain's head is locked once and only
    from then to commit (module docstring). Use it around the whole body of a transaction;
    an exception appends nothing (the transaction rolls back anyway). Nested blocks on the
    same session append with the outermost."""
    outer = _DEFERRED.get()
    if outer is not None and outer.target is session:
        yield
        return
    pending = _Deferred(session)
    token = _DEFERRED.set(pending)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
    if not pending.events:
        return
    if isinstance(session, Session):
        session.flush()  # the rows first: the head lock is then held for the commit alone
    links = _append(session, [values for values, _ in pending.events])
    connection = session.connection() if isinstance(session, Session) else session
    connection.execute(
        _INSERT_EVENT,
        [
            {"seq": seq, "hash": link, **fields}
            for (seq, link), (_, fields) in zip(links, pending.events, strict=True)
        ],
    )


@contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """A SAVEPOINT in a :func:`deferred` block: when it rolls back, so do the audit events
    recorded inside it (they would otherwise be appended at the end of the block)."""
    pending = _DEFERRED.get()
    mark = len(pending.events) if pending is not None else 0
    try:
        with connection.begin_nested():
            yield
    except BaseException:
        if pending is not None:
            del pending.events[mark:]
        raise


@contextmanager
def audited_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The pipeline's and the officers' work on tips: a row-locked write session
    (``tipline.db``: shared write lock on PostgreSQL, each row read-then-written locked by the
    caller) whose audit events are appended together just before commit (:func:`deferred`)."""
    with write_session(factory, row_locks=True) as session, deferred(session):
        yield session


@contextmanager
def audited_transaction(engine: Engine) -> Iterator[Connection]:
    """:func:`audited_session` for Core work (intake's expansion)."""
    with write_transaction(engine, row_locks=True) as connection, deferred(connection):
        yield connection


# Pre-built statements: building them per event cost more than executing them.
_CANONICAL_HEAD = CANONICAL_VERSION + SEP
_HEAD = cast(Table, AuditHead.__table__)
_LOCK_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ROW_ID).with_for_update()
_WRITE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ROW_ID)
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
_INSERT_EVENT = insert(cast(Table, AuditEvent.__table__))
# SQLite: one statement takes the write lock, moves the head and computes the link (with
# keys.chain_hash, registered on each connection by tipline.db), so it is atomic even in a
# deferred transaction, where a read first would fail on commit of a concurrent writer.
# ``seq + 1`` in an UPDATE's SET reads the old row, so it is the new event's seq.
_SQLITE_ADVANCE = (
    "UPDATE audit_head SET seq = seq + 1, "  # noqa: S608 - constant names; values are bound  # nosec B608
    f"hash = {SQLITE_CHAIN_HASH}(hash, ? || (seq + 1) || ?) "
    f"WHERE id = {HEAD_ROW_ID} RETURNING seq, hash"
)


def _advance_sqlite(connection: Connection, tail: str) -> tuple[int, str]:
    params = (_CANONICAL_HEAD, tail)
    try:
        row = connection.exec_driver_sql(_SQLITE_ADVANCE, params).one()
    except OperationalError as exc:  # an engine not made by tipline.db.make_engine
        if SQLITE_CHAIN_HASH not in str(exc):
            raise
        register_sqlite_functions(connection.connection.dbapi_connection)
        row = connection.exec_driver_sql(_SQLITE_ADVANCE, params).one()
    return int(row[0]), str(row[1])


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_chain` found. ``first_bad_seq`` names the first event in doubt."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None
    checkpoint_seq: int | None = None

    def describe(self) -> str:
        anchored = (
            f", matches checkpoint at #{self.checkpoint_seq}"
            if self.checkpoint_seq is not None
            else ""
        )
        if self.ok:
            return (
                f"audit chain intact: {self.checked} events, head #{self.head_seq} "
                f"{self.head_hash[:16]}…{anchored}"
            )
        who = f" ({self.first_bad_id})" if self.first_bad_id else ""
        return f"audit chain BROKEN at event #{self.first_bad_seq}{who}: {self.reason}"


@dataclass(frozen=True)
class _Anchor:
    seq: int
    hash: str


class ChainBrokenError(Exception):
    """The chain does not verify; ``result`` says where."""

    def __init__(self, result: VerifyResult) -> None:
        super().__init__(result.describe())
        self.result = result


class _Broken(Exception):
    def __init__(self, seq: int, reason: str, public_id: str | None = None) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason
        self.public_id = public_id


# Built from constant column names; the only value is an int. Not user input.
_SELECT = (
    "SELECT seq, "  # noqa: S608  # nosec B608
    + ", ".join(CHAINED)
    + ", hash FROM audit_events WHERE seq > {start} AND seq <= {head}"
)


def _rows(session: Session, head_seq: int, start: int = 0) -> Iterator[Sequence[Any]]:
    """The chained columns in seq order, as plain tuples, streamed.

    On SQLite the DB-API cursor is read directly: SQLAlchemy's Row objects would cost more
    than the hashing. Elsewhere a server-side cursor keeps a million rows out of memory.
    """
    sql = _SELECT.format(head=int(head_seq), start=int(start)) + " ORDER BY seq"
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.arraysize = 5000
            cursor.execute(sql)
            while batch := cursor.fetchmany():
                yield from batch
        finally:
            cursor.close()
        return
    result = connection.execution_options(stream_results=True, yield_per=5000).exec_driver_sql(sql)
    for row in result:
        yield tuple(row)


def _walk(
    rows: Iterable[Sequence[Any]], pins: dict[int, str], start: _Anchor | None = None
) -> tuple[int, str, int]:
    """Check every link; return (last seq, last hash, count) or raise :class:`_Broken`.

    The hot loop of verification: no ORM, no datetime parsing on SQLite, one join, two counts
    and one hash per event.
    """
    expected = start.seq + 1 if start is not None else 1
    previous = start.hash if start is not None else GENESIS_HASH
    first = expected
    link = chain_hash
    version = CANONICAL_VERSION
    fmt = TIME_FORMAT
    for row in rows:
        seq = row[0]
        if seq != expected:
            if isinstance(seq, int) and seq > expected:
                raise _Broken(expected, f"event #{expected} is missing (deleted)")
            raise _Broken(expected, f"event #{expected} is out of order (stored seq {seq!r})")
        values = list(row[1:12])
        at = values[1]
        if at.__class__ is not str and isinstance(at, datetime):
            values[1] = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).strftime(fmt)
        nulls = values.count(None)
        try:
            text = SEP.join([version, str(seq), *[NUL if v is None else v for v in values]])
        except TypeError:
            raise _Broken(seq, "a field holds a non-text value", str(row[1])) from None
        if text.count(SEP) != _N_SEPARATORS or text.count(NUL) != nulls:
            raise _Broken(seq, "a field holds a control character", str(row[1]))
        current = link(previous, text)
        if current != row[12]:
            raise _Broken(
                seq,
                "its stored hash does not match its content and the previous event "
                "(edited, inserted, or moved)",
                str(row[1]),
            )
        if seq in pins and current != pins[seq]:
            raise _Broken(seq, "differs from the signed checkpoint (history rewritten)", row[1])
        previous = current
        expected += 1
    return expected - 1, previous, expected - first


# The NULL marker, the NULL count and (PostgreSQL) the canonical time text come from the
# query (C, not Python), and the row's fields are joined straight from the tuple: a non-text
# value (an integer written over a text column in SQLite) makes the join raise, so it cannot
# pass for its digits.
def _fast_select(text_of: dict[str, str], marker: str, is_null: str) -> str:
    return (
        "SELECT seq, "  # noqa: S608 - constant column names; the one value is an int  # nosec B608
        + ", ".join(f"coalesce({text_of.get(c, c)}, {marker})" for c in CHAINED)
        + ", hash, "
        + " + ".join(is_null.format(c) for c in CHAINED)
        + " FROM audit_events WHERE seq > {start} AND seq <= {head} ORDER BY seq"
    )


_FAST_SELECT = {
    "sqlite": _fast_select({}, "char(30)", "({} IS NULL)"),
    # timestamptz in UTC, written as format_time() writes it (SQLite stores that text).
    "postgresql": _fast_select(
        {"at": "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"},
        "chr(30)",
        "({} IS NULL)::int",
    ),
}


def _walk_fast(
    session: Session, head_seq: int, pins: dict[int, str], start: _Anchor | None = None
) -> tuple[int, str, int]:
    """:func:`_walk` for SQLite and PostgreSQL: the same checks with less Python per row.

    The DB-API cursor is read directly (SQLAlchemy's rows would cost more than the hashing);
    on PostgreSQL a named (server-side) cursor keeps a million rows out of memory.
    """
    expected = start.seq + 1 if start is not None else 1
    previous = start.hash if start is not None else GENESIS_HASH
    first = expected
    link = chain_hash
    prefix = CANONICAL_VERSION + SEP
    n = len(CHAINED)
    connection = session.connection()
    dbapi: Any = connection.connection.dbapi_connection
    dialect = connection.dialect.name
    cursor = dbapi.cursor("tipline_verify") if dialect == "postgresql" else dbapi.cursor()
    try:
        cursor.arraysize = 5000
        cursor.execute(_FAST_SELECT[dialect].format(head=int(head_seq), start=first - 1))
        while batch := cursor.fetchmany():
            for row in batch:
                seq = row[0]
                if seq != expected or seq.__class__ is not int:
                    if isinstance(seq, int) and seq > expected:
                        raise _Broken(expected, f"event #{expected} is missing (deleted)")
                    raise _Broken(
                        expected, f"event #{expected} is out of order (stored seq {seq!r})"
                    )
                try:
                    text = prefix + str(seq) + SEP + SEP.join(row[1 : n + 1])
                except TypeError:
                    raise _Broken(seq, "a field holds a non-text value", str(row[1])) from None
                if text.count(SEP) != _N_SEPARATORS or text.count(NUL) != row[n + 2]:
                    raise _Broken(seq, "a field holds a control character", str(row[1]))
                current = link(previous, text)
                if current != row[n + 1]:
                    raise _Broken(
                        seq,
                        "its stored hash does not match its content and the previous event "
                        "(edited, inserted, or moved)",
                        str(row[1]),
                    )
                if seq in pins and current != pins[seq]:
                    raise _Broken(
                        seq, "differs from the signed checkpoint (history rewritten)", str(row[1])
                    )
                previous = current
                expected += 1
    finally:
        cursor.close()
    return expected - 1, previous, expected - first


def verify_chain(
    session: Session,
    from_checkpoint: Checkpoint | Path | str | None = None,
    *,
    trusted_key: VerifyKey | None = None,
    pins: dict[int, str] | None = None,
    start: tuple[int, str] | None = None,
) -> VerifyResult:
    """Check the whole chain from event 1 and its head; with a checkpoint, anchor it there.

    ``pins`` (seq → hash) are further signed hashes the chain must pass through (the
    witnessed checkpoints, :mod:`tipline.audit.witness`); ``start`` (seq, hash), a point
    already verified and witnessed, from which to check only the newer events.

    ``from_checkpoint`` is a :class:`tipline.audit.checkpoint.Checkpoint` or a path to a
    checkpoint file. Its signature is checked (against ``trusted_key``, a ``keys.VerifyKey``,
    when given) and the chain must pass through its signed hash: a history rewritten with
    recomputed hashes, or cut below the checkpoint, is reported. Read-only; consistent under
    concurrent appends (events newer than the head read here are left to the next run).
    """
    anchor: _Anchor | None = None
    if from_checkpoint is not None:
        try:
            checkpoint = load_checkpoint(from_checkpoint, trusted_key=trusted_key)
        except CheckpointError as exc:
            return VerifyResult(False, 0, 0, "", None, None, f"checkpoint: {exc}")
        anchor = _Anchor(checkpoint.seq, checkpoint.hash)
    pinned = dict(pins or {})
    if anchor is not None:
        if pinned.get(anchor.seq, anchor.hash) != anchor.hash:
            return VerifyResult(
                False, 0, 0, "", anchor.seq, None, "the checkpoint contradicts a witnessed one"
            )
        pinned[anchor.seq] = anchor.hash
    begin = _Anchor(*start) if start is not None else None
    # An event commits with its head update, and the head only moves forward (trigger): any
    # event seen by the first query has a head at least as far by the second.
    max_seq = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    head = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ROW_ID)
    ).one_or_none()
    if head is None:
        return VerifyResult(False, 0, 0, "", 1, None, "the audit head row is missing")
    head_seq, head_hash = head
    checkpoint_seq = anchor.seq if anchor is not None else None
    try:
        if session.connection().dialect.name in _FAST_SELECT and _FAST:
            last_seq, last_hash, count = _walk_fast(session, head_seq, pinned, begin)
        else:
            rows = _rows(session, head_seq, begin.seq if begin is not None else 0)
            last_seq, last_hash, count = _walk(rows, pinned, begin)
    except _Broken as bad:
        return VerifyResult(
            False,
            bad.seq - 1,
            head_seq,
            head_hash,
            bad.seq,
            bad.public_id,
            bad.reason,
            checkpoint_seq,
        )
    problem: tuple[int, str] | None = None
    if last_seq < head_seq:
        problem = (last_seq + 1, f"events #{last_seq + 1}…#{head_seq} are missing (deleted)")
    elif last_hash != head_hash:
        problem = (last_seq, "the last event does not match the chain head")
    elif begin is not None and last_seq < begin.seq:
        problem = (last_seq + 1, f"the chain ends before the witnessed event #{begin.seq}")
    elif max_seq is not None and max_seq > head_seq:
        problem = (head_seq + 1, f"event #{head_seq + 1} was added behind the chain head")
    elif pinned and max(pinned) > last_seq:
        problem = (last_seq + 1, f"the chain ends before the checkpoint's event #{max(pinned)}")
    if problem is not None:
        seq, reason = problem
        public_id = session.scalar(select(AuditEvent.public_id).where(AuditEvent.seq == seq))
        return VerifyResult(
            False, count, head_seq, head_hash, seq, public_id, reason, checkpoint_seq
        )
    return VerifyResult(True, count, head_seq, head_hash, checkpoint_seq=checkpoint_seq)


def write_checkpoint(
    session: Session, key: SigningKey, out: Path | str | None = None, *, verify: bool = True
) -> Checkpoint:
    """Sign the chain's current head; write it to ``out`` (mode 0644, never overwritten).

    Raises :class:`ChainBrokenError` when ``verify`` and the chain does not verify.
    """
    if verify:
        result = verify_chain(session)
        if not result.ok:
            raise ChainBrokenError(result)
        seq, hash_ = result.head_seq, result.head_hash
    else:
        seq, hash_ = session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ROW_ID)
        ).one()
    at = datetime.now(UTC)
    checkpoint = Checkpoint(
        seq=seq,
        hash=hash_,
        at=at,
        public_key=key.verify_key.raw,
        signature=key.sign(Checkpoint.signed_bytes(seq, hash_, at)),
    )
    if out is not None:
        path = Path(out)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(checkpoint.to_json() + "\n")
    return checkpoint
