"""Expanding recorded events into tips: the worker's half of intake.

:mod:`tipline.intake.recording` stored each event sealed to the transit key, as received.
:func:`expand_pending` (the worker's relay loop, in batches) opens each event with the transit
key, joins it to the informant's open tip or opens a new one (its own key pair), seals the
message to the tip's key, grants the tip key to transit, queues the dispatch job through the
outbox, and erases the sealed event.

The intake tier can append to a tip without being able to read it: every message is sealed to
the tip's public key, and the tip's private key is sealed to the transit key until dispatch.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, cast

from redis.lock import Lock
from sqlalchemy import Connection, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from keys import PrivateKey, PublicKey, generate_keypair, keyed_digest
from tipline import audit, informant
from tipline.config import Config
from tipline.intake.recording import (
    EVENTS,
    WEB_EVENT,
    dedup_key,
    fallback_key_for_oa,
    fallback_key_for_unit,
    new_receipt_code,
)
from tipline.leases import release, take_lease
from tipline.models import (
    CLOSED_STATUSES,
    Attachment,
    AttachmentState,
    Channel,
    Delivery,
    Direction,
    Holder,
    KeyGrant,
    Message,
    MessageKind,
    OfficialAccount,
    Priority,
    ReplyAddress,
    Subject,
    Tip,
    TipStatus,
    Unit,
    UnitKey,
    key_trust,
    new_public_id,
    utcnow,
)
from tipline.models.key_trust import certify, tip_subject
from tipline.models.sealed_fields import (
    ATTACHMENT_FETCH,
    ATTACHMENT_SOURCE,
    INBOUND_EVENT,
    KEY_GRANT,
    MESSAGE_BODY,
)
from tipline.outbox import (
    add_jobs,
)
from tipline.reply_addresses import informant_alias_key, seal_address
from tipline.routing.reroute import request_reroute
from tipline.runtime import Runtime
from tipline.time_rules import (
    ZALO_REPLY_WINDOW,
)
from tipline.transit import Sealing, TransitKeyLost, mark_lost
from tipline.zalo.events import (
    ConsoleReply,
    InboundMessage,
    Withdrawal,
    read_envelope,
    read_event,
)

TIPS = cast(Table, Tip.__table__)
MESSAGES = cast(Table, Message.__table__)
ADDRESSES = cast(Table, ReplyAddress.__table__)
GRANTS = cast(Table, KeyGrant.__table__)
ATTACHMENTS = cast(Table, Attachment.__table__)
UNITS = cast(Table, Unit.__table__)
OAS = cast(Table, OfficialAccount.__table__)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    tip_public_id: str
    new_tip: bool
    duplicate: bool = False


def informant_alias(alias_key: bytes, oa_id: str, identity: str) -> str:
    """The informant's alias (it links their tips) under the key of
    :func:`tipline.reply_addresses.informant_alias_key`: no configured secret reproduces it."""
    return keyed_digest(alias_key, "informant", f"{oa_id}\x00{identity}")


def _message_body(msg: InboundMessage, reply_to: str | None = None) -> bytes:
    """What officers read of ``msg`` (sealed to the tip): its text and everything else it
    carried, links and cards as text. ``reply_to``: the public id of the message of the same
    tip that ``msg`` quotes (``quoted`` alone: it quotes one that is not in the tip)."""
    body: dict[str, object] = {"text": msg.text, "event": msg.event_name}
    if msg.location is not None:
        body["location"] = {"lat": msg.location[0], "lon": msg.location[1]}
    if msg.location_missing:
        body["location_missing"] = True
    if msg.attachments:
        body["attachments"] = [a["type"] for a in msg.attachments]
    if msg.links:
        body["links"] = msg.links
    if msg.card is not None:
        body["card"] = msg.card
    if msg.sticker is not None:
        body["sticker"] = msg.sticker
    if msg.quote_msg_id is not None:
        body["quoted"] = True
        if reply_to is not None:
            body["reply_to"] = reply_to
    return json.dumps(body, ensure_ascii=False).encode()


@dataclass(frozen=True)
class _TipRow:
    """The tip a message joins."""

    id: int
    public_id: str
    public_key: bytes
    key_certificate: bytes | None

    @property
    def public(self) -> PublicKey:
        """Checked against its certificate before anything is sealed to it (key_trust)."""
        return tip_public(self.public_id, self.public_key, self.key_certificate)


def tip_public(public_id: str, public_key: bytes, certificate: bytes | None) -> PublicKey:
    return PublicKey.from_bytes(public_key).claiming(tip_subject(public_id), certificate)


@dataclass
class _Prepared:
    """Everything computed before the write lock is taken."""

    dedup: str
    alias: str
    now: datetime
    sealed_address: bytes
    message_public_id: str
    body: bytes
    tip_key: PrivateKey
    tip_public_id: str
    receipt_code: str
    sealed_body_new_tip: bytes


def _prepare(s: Sealing, msg: InboundMessage, alias_key: bytes | None = None) -> _Prepared:
    """``alias_key``: the informant alias key, read once by the caller for a batch."""
    key = alias_key if alias_key is not None else informant_alias_key(s.keystore)
    alias = informant_alias(key, msg.oa_id, msg.sender.identity)
    message_public_id = new_public_id()
    body = _message_body(msg)
    tip_key = generate_keypair()
    return _Prepared(
        dedup=dedup_key(s.config, msg.oa_id, msg.msg_id),
        alias=alias,
        now=utcnow(),
        sealed_address=seal_address(s.keystore, alias, msg.sender.address(), ZALO_REPLY_WINDOW),
        message_public_id=message_public_id,
        body=body,
        tip_key=tip_key,
        tip_public_id=new_public_id(),
        receipt_code=new_receipt_code(),
        sealed_body_new_tip=_seal_body(tip_key.public_key, message_public_id, body),
    )


def _seal_body(tip_public: PublicKey, message_public_id: str, body: bytes) -> bytes:
    return MESSAGE_BODY.seal(tip_public, body, message_public_id=message_public_id)


def _upsert_address_statement(dialect: str) -> Any:
    module: Any = sqlite if dialect == "sqlite" else postgresql
    stmt = module.insert(ADDRESSES)
    return stmt.on_conflict_do_update(
        index_elements=[ADDRESSES.c.informant_alias],
        set_={
            "last_inbound_at": stmt.excluded.last_inbound_at,
            "sealed_address": stmt.excluded.sealed_address,
            "destroyed_at": None,
        },
    ).returning(ADDRESSES.c.id)


# Built once: a statement built per call cost more CPU than running it (issue 15's profile).
_UPSERT_ADDRESS = {
    dialect: _upsert_address_statement(dialect) for dialect in ("sqlite", "postgresql")
}
_ADDRESS_OF_ALIAS = select(ADDRESSES.c.id).where(ADDRESSES.c.informant_alias == bindparam("alias"))
_RENEW_ADDRESS = (
    update(ADDRESSES)
    .where(ADDRESSES.c.id == bindparam("address_id"))
    .values(last_inbound_at=bindparam("now"), sealed_address=bindparam("sealed"), destroyed_at=None)
)


def _upsert_reply_address(conn: Connection, p: _Prepared, oa_id: str) -> int:
    """One row per informant alias; a new address after "STOP" makes them reachable again."""
    values = {
        "public_id": new_public_id(),
        "informant_alias": p.alias,
        "oa_id": oa_id,
        "sealed_address": p.sealed_address,
        "last_inbound_at": p.now,
        "created_at": p.now,
    }
    upsert = _UPSERT_ADDRESS.get(conn.dialect.name)
    if upsert is not None:
        return int(conn.execute(upsert, values).scalar_one())
    existing = conn.execute(_ADDRESS_OF_ALIAS, {"alias": p.alias}).scalar_one_or_none()
    if existing is None:
        return _insert_id(conn, ADDRESSES, values)
    conn.execute(_RENEW_ADDRESS, {"address_id": existing, "now": p.now, "sealed": p.sealed_address})
    return int(existing)


def _quoted(conn: Connection, config: Config, msg: InboundMessage, alias: str) -> Any:
    """The message of this informant's tips that ``msg`` quotes (``quote_msg_id``): one of
    theirs (by its dedup key) or one the OA sent them (by Zalo's id of it); None if neither.
    """
    if msg.quote_msg_id is None:
        return None
    return conn.execute(
        select(
            MESSAGES.c.public_id,
            TIPS.c.id,
            TIPS.c.public_id.label("tip_public_id"),
            TIPS.c.public_key,
            TIPS.c.key_certificate,
            TIPS.c.last_inbound_at,
            TIPS.c.last_outbound_at,
            TIPS.c.status,
            TIPS.c.informant_stopped_at,
        )
        .join(TIPS, TIPS.c.id == MESSAGES.c.tip_id)
        .where(
            TIPS.c.informant_alias == alias,
            (MESSAGES.c.dedup_key == dedup_key(config, msg.oa_id, msg.quote_msg_id))
            | (MESSAGES.c.zalo_message_id == msg.quote_msg_id),
        )
        .order_by(MESSAGES.c.id.desc())
        .limit(1)
    ).first()


_OPEN_TIP_OF_ALIAS = (
    select(
        TIPS.c.id,
        TIPS.c.public_id,
        TIPS.c.public_key,
        TIPS.c.key_certificate,
        TIPS.c.last_inbound_at,
        TIPS.c.last_outbound_at,
    )
    .where(
        TIPS.c.informant_alias == bindparam("alias"),
        TIPS.c.status.not_in(list(CLOSED_STATUSES)),
        TIPS.c.informant_stopped_at.is_(None),  # STOP is final for every tip before it
    )
    .order_by(TIPS.c.last_inbound_at.desc())
    .limit(1)
)


def _tip_to_join(conn: Connection, config: Config, p: _Prepared) -> Any:
    """The informant's open tip this message continues, if any (DESIGN.md: follow-ups)."""
    row = conn.execute(_OPEN_TIP_OF_ALIAS, {"alias": p.alias}).first()
    if row is None:
        return None
    if row.last_inbound_at >= p.now - config.followup_window:
        return row
    replied = row.last_outbound_at
    if (
        replied is not None
        and replied > row.last_inbound_at
        and replied >= p.now - ZALO_REPLY_WINDOW
    ):
        return row  # a reply to an officer's question
    return None


# Who wrote an outbound message that no officer wrote (``by`` in its sealed body).
OA_CONSOLE = "oa_console"

EXPAND_LOCK = 0x7469706C696E6501  # pg advisory lock key: "tipline" + 1, plus the lane
EXPANDER_LOCK = "tipline:expander"  # Redis: one expander a lane at a time (expand_pending)
EXPANDER_LEASE_SECONDS = 10
# An event expansion raised on this many times is set aside (InboundEvent.expand_failed_at).
EXPAND_ATTEMPTS = 3


def expander_lease(lane: int) -> str:
    """The Redis lease of one expansion lane."""
    return f"{EXPANDER_LOCK}:{lane}"


def expand_pending(runtime: Runtime, limit: int = 200, expanders: int = 1) -> int:
    """Turn stored events into tips and messages; return how many events were taken up.

    In two phases, so the write lock is held only for the writes (issue 15): the pending
    events are read, opened and parsed, and each message's sealing prepared (the new tip's key
    pair, the sealed body and address), in a read transaction; then one write transaction
    takes the events still pending and writes them.

    An event whose transit epoch lost its key waits (``transit_lost_at``) for its unit's key
    holders (tipline.transit.recover_events); it never holds up the events after it. Nor does
    one that raises: each event runs in a savepoint, a failure is counted, and after
    EXPAND_ATTEMPTS the event is set aside for an admin (``expand_failed_at``). Database
    errors are not the event's fault: they roll the batch back, to be tried whole again.
    """
    # One expander a lane at a time, from the read on: an informant's messages are expanded
    # in the order they came (the second joins the tip the first opened), and two workers
    # would otherwise both open and prepare the same events, one of them for nothing. Each
    # OA's events are one lane (tipline.intake.recording.lane_of); lanes expand side by side,
    # oldest pending event first, on at most ``expanders`` workers at once
    # (TIPLINE_EXPANDERS, 1 by default), so that the others dispatch and send meanwhile: on one
    # 2-core machine, with every worker expanding, dispatch waited (PostgreSQL, 2 workers: p95
    # 2.7-2.9 s became 3.2-3.5 s), and two expanders of four workers cost 2-3 ms a tip more
    # (docs/benchmarks.md, session 8). An expander takes its share of the waiting lanes and
    # expands them in one batch (a batch a lane cost a write transaction each). Short leases,
    # renewed between the phases, taken over at once from a worker of this machine that died
    # holding them (tipline.leases): a longer one held expansion up for its whole life after a
    # SIGKILL (tests/faults).
    slot = _expander_slot(runtime, expanders)
    if slot is None:
        return 0  # as many workers as may expand are expanding
    try:
        with runtime.engine.connect() as conn:
            lanes = list(conn.scalars(_PENDING_LANES))
        share = -(-len(lanes) // max(1, expanders))
        held: dict[int, Lock] = {}
        for lane in lanes:
            if len(held) >= share:
                break
            lease = take_lease(runtime.redis, expander_lease(lane), EXPANDER_LEASE_SECONDS)
            if lease is not None:  # else another worker is expanding this lane
                held[lane] = lease
        try:
            return _expand_batch(runtime, limit, [slot, *held.values()], sorted(held))
        finally:
            for lease in held.values():
                release(lease)
    finally:
        release(slot)


def _expander_slot(runtime: Runtime, expanders: int) -> Lock | None:
    """One of ``expanders`` slots, or None while every one is taken."""
    for n in range(max(1, expanders)):
        slot = take_lease(runtime.redis, f"{EXPANDER_LOCK}:slot:{n}", EXPANDER_LEASE_SECONDS)
        if slot is not None:
            return slot
    return None


def _expand_batch(runtime: Runtime, limit: int, leases: list[Lock], lanes: list[int]) -> int:
    if not lanes:
        return 0
    sealing = Sealing.of(runtime.config, runtime.transit, runtime.keystore)
    with runtime.engine.connect() as conn:
        rows = conn.execute(_PENDING_EVENTS, {"limit": limit, "lanes": lanes}).all()
    if not rows:
        return 0
    private_for = runtime.transit.batch_opener()
    alias_key = informant_alias_key(sealing.keystore)  # once a batch, not once an event
    opened = {row.id: _open(private_for, sealing, alias_key, row) for row in rows}
    for lease in leases:
        lease.reacquire()
    try:
        return _write_batch(runtime, sealing, opened, lanes, isolate=False)
    except _IsolateEvents:
        return _write_batch(runtime, sealing, opened, lanes, isolate=True)


class _IsolateEvents(Exception):
    """An event raised while a batch was written without savepoints: the batch is rolled back
    and written again, each event in a savepoint of its own."""


def _write_batch(
    runtime: Runtime,
    sealing: Sealing,
    opened: dict[int, _Opened],
    lanes: list[int],
    *,
    isolate: bool,
) -> int:
    """Phase 2 of :func:`expand_pending`. Events almost never raise here, so the batch is
    first written without a savepoint an event (two statements each, a tenth of expansion);
    only when one raises is it written again with them (``isolate``), so that the failing
    event is rolled back alone and counted (:func:`_count_failure`)."""
    with audit.audited_transaction(runtime.engine) as conn:
        query = select(EVENTS.c.id).where(
            EVENTS.c.id.in_(list(opened)), EVENTS.c.processed_at.is_(None)
        )
        if conn.dialect.name == "postgresql":
            # One expander a lane at a time. Two batches of one lane would deadlock on its
            # informants' reply addresses and tips, and each deadlock threw away a batch of up
            # to 200 expansions (tests/faults). Lanes touch disjoint OAs, informants, tips and
            # reply addresses; the audit head, which every batch moves, is locked last
            # (tipline.audit.chain.deferred), so batches of two lanes wait on it only for the
            # other's commit. SQLite's BEGIN IMMEDIATE runs one batch at a time anyway.
            for lane in lanes:
                locked = conn.execute(select(func.pg_try_advisory_xact_lock(EXPAND_LOCK + lane)))
                if not locked.scalar():
                    return 0
            query = query.with_for_update(skip_locked=True)
        still_pending = set(conn.scalars(query.order_by(EVENTS.c.id)))
        heard: dict[str, datetime] = {}  # OA id → its latest event in this batch
        fallbacks: dict[str, UnitKey | None] = {}  # OA id → its unit's current key
        later = _Later()
        for event_id, event in opened.items():
            if event_id not in still_pending:
                continue  # expanded meanwhile by another worker
            if event.error is not None:  # opening or reading it failed: nothing written yet
                _count_failure(conn, event_id, event.error)
                continue
            mine = _Later()
            try:
                if isolate:
                    with audit.savepoint(conn):
                        _expand_one(conn, sealing, event, heard, fallbacks, mine)
                else:
                    _expand_one(conn, sealing, event, heard, fallbacks, mine)
            except DBAPIError:
                raise
            except Exception as exc:  # the event's own fault: counted, never the batch's
                if not isolate:
                    raise _IsolateEvents from exc
                _count_failure(conn, event_id, exc)
            else:
                later.take(mine)
        later.write(conn)
        _heard_from(conn, heard)
    return len(still_pending)


_WAITING = (
    EVENTS.c.processed_at.is_(None),
    EVENTS.c.transit_lost_at.is_(None),
    EVENTS.c.expand_failed_at.is_(None),
)
_PENDING_EVENTS = (
    select(EVENTS.c.id, EVENTS.c.dedup_key, EVENTS.c.sealed_event, EVENTS.c.received_at)
    .where(*_WAITING, EVENTS.c.lane.in_(bindparam("lanes", expanding=True)))
    .order_by(EVENTS.c.id)
    .limit(bindparam("limit"))
)
# The lanes with events waiting, the one whose oldest event came first first.
_PENDING_LANES = (
    select(EVENTS.c.lane).where(*_WAITING).group_by(EVENTS.c.lane).order_by(func.min(EVENTS.c.id))
)


@dataclass
class _Opened:
    """A pending event as phase 1 of :func:`expand_pending` left it."""

    id: int
    received_at: datetime | None
    lost: bool = False  # its transit epoch's key is gone
    error: Exception | None = None  # opening or reading it raised
    web: dict[str, Any] | None = None
    event: InboundMessage | ConsoleReply | Withdrawal | None = None
    prepared: _Prepared | None = None


def _open(
    private_for: Callable[[bytes], PrivateKey], sealing: Sealing, alias_key: bytes, row: Any
) -> _Opened:
    opened = _Opened(row.id, row.received_at)
    try:
        key = private_for(row.sealed_event)
    except TransitKeyLost:
        opened.lost = True
        return opened
    try:
        raw = INBOUND_EVENT.open(key, row.sealed_event, dedup_key=row.dedup_key)
        data = json.loads(raw)
        if isinstance(data, dict) and data.get("event_name") == WEB_EVENT:
            opened.web = data
            return opened
        event = read_event(read_envelope(data))
        if not isinstance(event, InboundMessage | ConsoleReply | Withdrawal):
            raise ValueError("a stored inbound event carries nothing to expand")
        opened.event = event
        if isinstance(event, InboundMessage):
            opened.prepared = _prepare(sealing, event, alias_key)
    except Exception as exc:  # counted against the event in phase 2
        opened.error = exc
    return opened


@dataclass
class _Later:
    """Rows an expansion batch writes together at its end (one statement each, executemany),
    not one statement each a tip: the tips' transit and fallback grants, their dispatch jobs,
    and the events marked expanded. Nothing in the batch reads them back; an event whose
    savepoint rolled back contributes none (its own list is dropped)."""

    grants: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[tuple[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def take(self, other: _Later) -> None:
        self.grants += other.grants
        self.jobs += other.jobs
        self.events += other.events

    def write(self, conn: Connection) -> None:
        if self.grants:
            conn.execute(_INSERT_GRANT, self.grants)
        if self.jobs:
            add_jobs(conn, self.jobs)
        if self.events:
            conn.execute(_EVENT_EXPANDED, self.events)


def _expand_one(
    conn: Connection,
    sealing: Sealing,
    opened: _Opened,
    heard: dict[str, datetime],
    fallbacks: dict[str, UnitKey | None],
    later: _Later,
) -> None:
    if opened.lost:
        mark_lost(conn, opened.id, utcnow())
        return
    if opened.error is not None:
        raise opened.error
    event = opened.event
    if opened.web is not None:
        accepted = _accept_web(conn, sealing, opened.web)
    elif isinstance(event, InboundMessage):
        accepted = _accept(conn, sealing, event, opened.prepared, fallbacks, later)
        at = opened.received_at or utcnow()
        heard[event.oa_id] = max(at, heard.get(event.oa_id, at))
    elif isinstance(event, ConsoleReply):
        accepted = _accept_console_reply(conn, sealing, event)
    elif isinstance(event, Withdrawal):
        accepted = _accept_withdrawal(conn, sealing, event)
    else:  # cannot happen: _open refused it
        raise ValueError("a stored inbound event carries nothing to expand")
    later.events.append(
        {"event_id": opened.id, "at": utcnow(), "tip": accepted.tip_public_id or None}
    )


_EVENT_EXPANDED = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("event_id"))
    .values(
        processed_at=bindparam("at"),
        sealed_event=None,
        sealed_fallback=None,
        tip_public_id=bindparam("tip"),
    )
)


def _count_failure(conn: Connection, event_id: int, exc: Exception) -> None:
    """One more failure of event ``event_id``; set aside at EXPAND_ATTEMPTS. Logged by the
    exception's class only: its message may quote the event."""
    failures = conn.execute(
        update(EVENTS)
        .where(EVENTS.c.id == event_id)
        .values(expand_failures=EVENTS.c.expand_failures + 1, expand_error=type(exc).__name__)
        .returning(EVENTS.c.expand_failures)
    ).scalar_one()
    if failures >= EXPAND_ATTEMPTS:
        conn.execute(
            update(EVENTS).where(EVENTS.c.id == event_id).values(expand_failed_at=utcnow())
        )
        log.error(
            "expansion: event %d set aside after %d failures (%s): see /admin/zalo-events",
            event_id,
            failures,
            type(exc).__name__,
        )
    else:
        log.warning(
            "expansion: event %d failed (%s), attempt %d of %d",
            event_id,
            type(exc).__name__,
            failures,
            EXPAND_ATTEMPTS,
        )


def _heard_from(conn: Connection, heard: dict[str, datetime]) -> None:
    """``official_accounts.last_webhook_at``: one UPDATE per OA per batch, never backwards.

    Here rather than in the webhook, which must answer Zalo within 2 s with one INSERT.
    """
    for oa_id, at in heard.items():
        conn.execute(
            update(OAS)
            .where(
                OAS.c.oa_id == oa_id,
                or_(OAS.c.last_webhook_at.is_(None), OAS.c.last_webhook_at < at),
            )
            .values(last_webhook_at=at)
        )


_TIP_OF_DEDUP = (
    select(TIPS.c.public_id)
    .join(MESSAGES, MESSAGES.c.tip_id == TIPS.c.id)
    .where(MESSAGES.c.dedup_key == bindparam("dedup"))
)
_TIP_FOLLOWED_UP = (
    update(TIPS)
    .where(TIPS.c.id == bindparam("tip_id"))
    .values(
        last_inbound_at=bindparam("now"),
        reply_address_id=bindparam("address_id"),
        updated_at=bindparam("now"),
    )
)


def accept_message(runtime: Runtime, msg: InboundMessage) -> Accepted:
    """Store ``msg`` as a tip message at once (what expansion does for each stored event)."""
    sealing = Sealing.of(runtime.config, runtime.transit, runtime.keystore)
    with audit.audited_transaction(runtime.engine) as conn:
        return _accept(conn, sealing, msg)


def _accept(
    conn: Connection,
    s: Sealing,
    msg: InboundMessage,
    prepared: _Prepared | None = None,
    fallbacks: dict[str, UnitKey | None] | None = None,
    later: _Later | None = None,
) -> Accepted:
    """``fallbacks``: each OA's fallback unit key, looked up once per write transaction."""
    p = prepared or _prepare(s, msg)
    seen = conn.execute(_TIP_OF_DEDUP, {"dedup": p.dedup}).scalar_one_or_none()
    if seen is not None:
        return Accepted(seen, new_tip=False, duplicate=True)
    # "STOP", "tình trạng", a 1–5 score: answered here, never stored as a tip message.
    command = informant.intercept(
        conn, s, msg, p.alias, partial(_upsert_reply_address, conn, p, msg.oa_id)
    )
    if command is not None:
        return Accepted(command, new_tip=False)
    address_id = _upsert_reply_address(conn, p, msg.oa_id)
    quoted = _quoted(conn, s.config, msg, p.alias)
    joined: _TipRow | None
    if (
        quoted is not None
        and quoted.status not in CLOSED_STATUSES
        and quoted.informant_stopped_at is None
    ):
        # A reply to a message of an open tip continues that tip, however long ago.
        joined = _TipRow(quoted.id, quoted.tip_public_id, quoted.public_key, quoted.key_certificate)
    else:
        row = _tip_to_join(conn, s.config, p)
        joined = (
            None
            if row is None
            else _TipRow(row.id, row.public_id, row.public_key, row.key_certificate)
        )
    if joined is not None and not key_trust.accept(joined.public):
        # The tip's stored key is not the one it was made with (swapped in the database):
        # nothing is sealed to it. The message starts a new tip, which the next ones join.
        joined = None
        quoted = None
    reply_to = (
        quoted.public_id
        if quoted is not None and joined is not None and quoted.id == joined.id
        else None
    )
    body = p.body if msg.quote_msg_id is None else _message_body(msg, reply_to)
    if joined is None:
        if fallbacks is None:
            fallback = fallback_key_for_oa(conn, msg.oa_id)
        elif msg.oa_id in fallbacks:
            fallback = fallbacks[msg.oa_id]
        else:
            fallback = fallbacks[msg.oa_id] = fallback_key_for_oa(conn, msg.oa_id)
        tip_id = _insert_tip(conn, s, p, msg.oa_id, address_id, fallback, later)
        tip_public_id = p.tip_public_id
        sealed_body = (
            p.sealed_body_new_tip
            if body is p.body
            else _seal_body(p.tip_key.public_key, p.message_public_id, body)
        )
    else:
        tip_id, tip_public_id = joined.id, joined.public_id
        sealed_body = _seal_body(joined.public, p.message_public_id, body)
        conn.execute(_TIP_FOLLOWED_UP, {"tip_id": tip_id, "now": p.now, "address_id": address_id})
        if msg.location is not None:  # the answer to "please share a location" (routing)
            request_reroute(conn, s.transit, tip_id, msg.location)
    message_id = _insert_id(
        conn,
        MESSAGES,
        dict(
            public_id=p.message_public_id,
            tip_id=tip_id,
            direction=Direction.INBOUND,
            kind=msg.kind,
            sealed_body=sealed_body,
            dedup_key=p.dedup,
            created_at=p.now,
            delivery_attempts=0,
        ),
    )
    if msg.attachments:
        tip_public = p.tip_key.public_key if joined is None else joined.public
        sources = [
            (new_public_id(), str(item["type"]), item["payload"]) for item in msg.attachments
        ]
        _insert_attachments(conn, s, tip_public, tip_id, message_id, sources, p.now)
    if joined is None:
        # A new tip, by the system. Never the informant: the OA is the unit's own account.
        audit.record(
            conn,
            action=audit.actions.TIP_RECEIVED,
            object_id=tip_public_id,
            detail={"oa": msg.oa_id},
        )
    return Accepted(tip_public_id, new_tip=joined is None)


def _accept_console_reply(conn: Connection, s: Sealing, reply: ConsoleReply) -> Accepted:
    """An OA admin's reply typed on Zalo: an outbound message of the informant's latest tip,
    delivered already (Zalo did), attributed to the OA's console and audited. Nothing is
    recorded for someone without a tip: there is no case it belongs to."""
    dedup = dedup_key(s.config, reply.oa_id, reply.msg_id)
    seen = conn.execute(
        select(TIPS.c.public_id)
        .join(MESSAGES, MESSAGES.c.tip_id == TIPS.c.id)
        .where(MESSAGES.c.dedup_key == dedup)
    ).scalar_one_or_none()
    if seen is not None:
        return Accepted(seen, new_tip=False, duplicate=True)
    alias = informant_alias(informant_alias_key(s.keystore), reply.oa_id, reply.recipient.identity)
    tip = conn.execute(
        select(TIPS.c.id, TIPS.c.public_id, TIPS.c.public_key, TIPS.c.key_certificate)
        .where(TIPS.c.informant_alias == alias)
        .order_by(TIPS.c.last_inbound_at.desc(), TIPS.c.id.desc())
        .limit(1)
    ).first()
    if tip is None or not key_trust.accept(
        tip_public(tip.public_id, tip.public_key, tip.key_certificate)
    ):
        return Accepted("", new_tip=False)
    now = utcnow()
    public_id = new_public_id()
    body: dict[str, object] = {"text": reply.text, "event": reply.event_name, "by": OA_CONSOLE}
    if reply.attachments:
        body["attachments"] = reply.attachments
    if reply.links:
        body["links"] = reply.links
    if reply.sticker is not None:
        body["sticker"] = reply.sticker
    encoded = json.dumps(body, ensure_ascii=False).encode()
    _insert_id(
        conn,
        MESSAGES,
        dict(
            public_id=public_id,
            tip_id=tip.id,
            direction=Direction.OUTBOUND,
            kind=reply.kind,
            sealed_body=_seal_body(
                tip_public(tip.public_id, tip.public_key, tip.key_certificate), public_id, encoded
            ),
            dedup_key=dedup,
            zalo_message_id=reply.msg_id[:64],
            created_at=now,
            delivery=Delivery.SENT,
            delivered_at=now,
            delivery_attempts=0,
        ),
    )
    conn.execute(
        update(TIPS).where(TIPS.c.id == tip.id).values(last_outbound_at=now, updated_at=now)
    )
    audit.record(
        conn,
        action=audit.actions.OA_CONSOLE_REPLY,
        object_id=tip.public_id,
        detail={"message": public_id},
    )
    return Accepted(str(tip.public_id), new_tip=False)


def _accept_withdrawal(conn: Connection, s: Sealing, withdrawal: Withdrawal) -> Accepted:
    """``user_withdraw``: :func:`tipline.informant.withdraw` for this informant of this OA."""
    key = informant_alias_key(s.keystore)
    alias = informant_alias(key, withdrawal.oa_id, withdrawal.sender.identity)
    informant.withdraw(conn, s.keystore, alias, utcnow())
    return Accepted("", new_tip=False)


_INSERT_RETURNING_ID: dict[str, Any] = {}


def _insert_id(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    stmt = _INSERT_RETURNING_ID.get(table.name)
    if stmt is None:  # one statement a table, built once (its values are parameters)
        stmt = _INSERT_RETURNING_ID[table.name] = insert(table).returning(table.c.id)
    return int(conn.execute(stmt, values).scalar_one())


_INSERT_GRANT = insert(GRANTS)


def _insert_tip(
    conn: Connection,
    s: Sealing,
    p: _Prepared,
    oa_id: str | None,
    address_id: int,
    fallback: UnitKey | None,
    later: _Later | None = None,
    **web: Any,
) -> int:
    """The tip row, its transit grant and its intake unit's fallback grant, and its dispatch
    job (``later``: the grants and the job written with the batch's, :class:`_Later`)."""
    grants: list[dict[str, Any]] = []
    tip_id = _insert_id(
        conn,
        TIPS,
        dict(
            public_id=p.tip_public_id,
            receipt_code=p.receipt_code,
            status=TipStatus.NEW,
            priority=Priority.NORMAL,
            channel=Channel.ZALO,
            oa_id=oa_id,
            informant_alias=p.alias,
            reply_address_id=address_id,
            public_key=p.tip_key.public_key.to_bytes(),
            key_certificate=certify(tip_subject(p.tip_public_id), p.tip_key.public_key),
            created_at=p.now,
            updated_at=p.now,
            last_inbound_at=p.now,
            dispatch_attempts=0,
            needs_location=False,
            escalation_level=0,
        )
        | web,
    )
    grants.append(
        dict(
            subject_kind=Subject.TIP,
            subject_id=tip_id,
            holder_kind=Holder.TRANSIT,
            holder_id=0,
            sealed=KEY_GRANT.seal(p.tip_key, s.transit, Subject.TIP, tip_id, Holder.TRANSIT, 0),
            created_at=p.now,
        )
    )
    if fallback is not None and not key_trust.accept(fallback.public):
        fallback = None  # a swapped unit key gets nothing; dispatch holds the tip (dispatch)
    if fallback is not None:
        # The intake unit may hold a tip that is not routed yet (and only it, or its parents):
        # if the transit epoch's key is lost before dispatch, its key holders route it by hand.
        grants.append(
            dict(
                subject_kind=Subject.TIP,
                subject_id=tip_id,
                holder_kind=Holder.UNIT_KEY,
                holder_id=fallback.id,
                sealed=KEY_GRANT.seal(
                    p.tip_key,
                    fallback.public.with_version(fallback.version),
                    Subject.TIP,
                    tip_id,
                    Holder.UNIT_KEY,
                    fallback.id,
                ),
                created_at=p.now,
            )
        )
    if later is not None:
        later.grants += grants
        later.jobs.append(("dispatch", p.tip_public_id))
    else:
        conn.execute(_INSERT_GRANT, grants)
        add_jobs(conn, [("dispatch", p.tip_public_id)], p.now)
    return tip_id


def _accept_web(conn: Connection, s: Sealing, data: dict[str, Any]) -> Accepted:
    """A web-form report: always a new tip, in the unit the informant chose, channel "web".

    The tip key and its passphrase wrap were made by the form handler (the passphrase is never
    stored); the receipt code was shown to the informant already.
    """
    receipt_code = str(data["receipt_code"])
    existing = conn.execute(
        select(TIPS.c.public_id).where(TIPS.c.receipt_code == receipt_code)
    ).scalar_one_or_none()
    if existing is not None:
        return Accepted(existing, new_tip=False, duplicate=True)
    unit_id = conn.execute(
        select(UNITS.c.id).where(UNITS.c.public_id == str(data["unit"]))
    ).scalar_one_or_none()
    tip_key = PrivateKey.from_bytes(base64.b64decode(data["tip_key"]))
    alias = keyed_digest(s.config.secrets.alias_key, "informant", "web\x00" + receipt_code)
    now = utcnow()
    message_public_id = new_public_id()
    body: dict[str, object] = {"text": str(data.get("text", "")), "event": WEB_EVENT}
    location = data.get("location")
    if isinstance(location, dict):
        body["location"] = {"lat": float(location["lat"]), "lon": float(location["lon"])}
    encoded = json.dumps(body, ensure_ascii=False).encode()
    p = _Prepared(
        dedup="",
        alias=alias,
        now=now,
        sealed_address=seal_address(s.keystore, alias, {"kind": Channel.WEB}, ZALO_REPLY_WINDOW),
        message_public_id=message_public_id,
        body=encoded,
        tip_key=tip_key,
        tip_public_id=new_public_id(),
        receipt_code=receipt_code,
        sealed_body_new_tip=_seal_body(tip_key.public_key, message_public_id, encoded),
    )
    address_id = _insert_id(
        conn,
        ADDRESSES,
        {
            "public_id": new_public_id(),
            "informant_alias": alias,
            "oa_id": Channel.WEB,
            "sealed_address": p.sealed_address,
            "last_inbound_at": now,
            "created_at": now,
        },
    )
    tip_id = _insert_tip(
        conn,
        s,
        p,
        None,
        address_id,
        fallback_key_for_unit(conn, unit_id) if unit_id is not None else None,
        channel=Channel.WEB,
        unit_id=unit_id,
        informant_key=base64.b64decode(data["informant_key"]),
    )
    message_id = _insert_id(
        conn,
        MESSAGES,
        dict(
            public_id=message_public_id,
            tip_id=tip_id,
            direction=Direction.INBOUND,
            kind=MessageKind.TEXT,
            sealed_body=p.sealed_body_new_tip,
            created_at=now,
            delivery_attempts=0,
        ),
    )
    files = data.get("files")
    if isinstance(files, list) and files:
        sources = [
            (str(item["public_id"]), "file", {"file": str(item["ref"]), "name": str(item["name"])})
            for item in files
        ]
        _insert_attachments(conn, s, tip_key.public_key, tip_id, message_id, sources, now)
    audit.record(
        conn,
        action=audit.actions.TIP_RECEIVED,
        object_id=p.tip_public_id,
        detail={"channel": Channel.WEB},
    )
    return Accepted(p.tip_public_id, new_tip=True)


def _insert_attachments(
    conn: Connection,
    s: Sealing,
    tip_public: PublicKey,
    tip_id: int,
    message_id: int,
    sources: list[tuple[str, str, dict[str, Any]]],
    now: datetime,
) -> None:
    """Pending attachments and one media job each (download or read, clean, seal to the tip).

    ``sources``: (public id, kind, where the bytes are): a Zalo payload (``url``, ``name``,
    ``size``, ``checksum``) or a web-form upload (``file``: a file store reference).
    """
    rows = []
    for public_id, kind, given in sources:
        # The informant's file name is never kept, not even sealed: it is often their own name,
        # a phone's or a place's; officers see a name made of the receipt code (issue 13).
        source = {key: value for key, value in given.items() if key != "name"}
        encoded = json.dumps(source, ensure_ascii=False).encode()
        rows.append(
            {
                "public_id": public_id,
                "tip_id": tip_id,
                "message_id": message_id,
                "kind": kind[:16],
                "state": AttachmentState.PENDING,
                "created_at": now,
                "sealed_source": ATTACHMENT_SOURCE.seal(
                    tip_public, encoded, attachment_public_id=public_id
                ),
                # Workers lose the tip key at dispatch; the media job reads this one instead.
                "sealed_fetch": ATTACHMENT_FETCH.seal(
                    s.transit, encoded, attachment_public_id=public_id
                ),
            }
        )
    conn.execute(insert(ATTACHMENTS), rows)
    add_jobs(conn, [("media", str(row["public_id"])) for row in rows], now)
