"""Storing verified inbound messages: sealed on arrival, expanded into tips by the worker.

Two steps, so that Zalo gets its answer fast and nothing it was told is stored can be lost:

1. :func:`record_inbound` (the webhook): one INSERT of the event sealed to the transit key,
   unique on a keyed hash of its ``msg_id``. That row is the sealed tip content *and* its
   durable job; a redelivery hits the unique key and is answered as a duplicate.
2. :func:`expand_pending` (the worker's relay loop, in batches): opens each event with the
   transit key, joins it to the informant's open tip or opens a new one (its own key pair),
   seals the message to the tip's key, grants the tip key to transit, queues the dispatch job
   through the outbox, and erases the sealed event.

The intake tier can append to a tip without being able to read it: every message is sealed to
the tip's public key, and the tip's private key is sealed to the transit key until dispatch.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keys import (
    PrivateKey,
    PublicKey,
    generate_keypair,
    grant,
    keyed_digest,
    new_token,
    open_sealed,
    seal,
)
from tipline import audit, informant
from tipline.config import Config
from tipline.db import write_transaction
from tipline.intake.events import InboundMessage, read_envelope, read_message
from tipline.jobs.outbox import JOBS
from tipline.models import (
    CLOSED_STATUSES,
    Attachment,
    AttachmentState,
    Channel,
    Direction,
    Holder,
    InboundEvent,
    KeyGrant,
    Message,
    MessageKind,
    OutboxEntry,
    Priority,
    ReplyAddress,
    Subject,
    Tip,
    TipStatus,
    Unit,
    new_public_id,
    utcnow,
)
from tipline.outgoing import BODY_PURPOSE
from tipline.routing.reroute import request_reroute
from tipline.time_rules import ZALO_REPLY_WINDOW

TIPS = cast(Table, Tip.__table__)
MESSAGES = cast(Table, Message.__table__)
ADDRESSES = cast(Table, ReplyAddress.__table__)
GRANTS = cast(Table, KeyGrant.__table__)
OUTBOX = cast(Table, OutboxEntry.__table__)
ATTACHMENTS = cast(Table, Attachment.__table__)
UNITS = cast(Table, Unit.__table__)


@dataclass(frozen=True)
class Accepted:
    tip_public_id: str
    new_tip: bool
    duplicate: bool = False


def informant_alias(config: Config, oa_id: str, identity: str) -> str:
    return keyed_digest(config.secrets.alias_key, "informant", f"{oa_id}\x00{identity}")


def dedup_key(config: Config, oa_id: str, msg_id: str) -> str:
    return keyed_digest(config.secrets.alias_key, "msg_id", f"{oa_id}\x00{msg_id}")


def new_receipt_code() -> str:
    """ "TL-XXXX-XXXX": 40 random bits, easy to read out over the phone (unique column)."""
    raw = new_token(8)
    return f"TL-{raw[:4]}-{raw[4:]}"


def _message_body(msg: InboundMessage) -> bytes:
    body: dict[str, object] = {"text": msg.text, "event": msg.event_name}
    if msg.location is not None:
        body["location"] = {"lat": msg.location[0], "lon": msg.location[1]}
    if msg.attachments:
        body["attachments"] = [a["type"] for a in msg.attachments]
    return json.dumps(body, ensure_ascii=False).encode()


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


def _prepare(config: Config, msg: InboundMessage) -> _Prepared:
    alias = informant_alias(config, msg.oa_id, msg.sender.identity)
    message_public_id = new_public_id()
    body = _message_body(msg)
    tip_key = generate_keypair()
    return _Prepared(
        dedup=dedup_key(config, msg.oa_id, msg.msg_id),
        alias=alias,
        now=utcnow(),
        sealed_address=seal(
            config.secrets.relay_public,
            json.dumps(msg.sender.address()).encode(),
            purpose="reply_address",
            binding=ReplyAddress.binding_for(alias),
        ),
        message_public_id=message_public_id,
        body=body,
        tip_key=tip_key,
        tip_public_id=new_public_id(),
        receipt_code=new_receipt_code(),
        sealed_body_new_tip=_seal_body(tip_key.public_key, message_public_id, body),
    )


def _seal_body(tip_public: PublicKey, message_public_id: str, body: bytes) -> bytes:
    return seal(tip_public, body, purpose=BODY_PURPOSE, binding=f"message:{message_public_id}")


def _upsert_reply_address(conn: Connection, p: _Prepared, oa_id: str) -> int:
    """One row per informant alias; a new address after "STOP" makes them reachable again."""
    dialect = conn.dialect.name
    values = {
        "public_id": new_public_id(),
        "informant_alias": p.alias,
        "oa_id": oa_id,
        "sealed_address": p.sealed_address,
        "last_inbound_at": p.now,
        "created_at": p.now,
    }
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(ADDRESSES).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ADDRESSES.c.informant_alias],
            set_={
                "last_inbound_at": stmt.excluded.last_inbound_at,
                "sealed_address": stmt.excluded.sealed_address,
                "destroyed_at": None,
            },
        ).returning(ADDRESSES.c.id)
        return int(conn.execute(stmt).scalar_one())
    existing = conn.execute(
        select(ADDRESSES.c.id).where(ADDRESSES.c.informant_alias == p.alias)
    ).scalar_one_or_none()
    if existing is None:
        return _insert_id(conn, ADDRESSES, values)
    conn.execute(
        update(ADDRESSES)
        .where(ADDRESSES.c.id == existing)
        .values(last_inbound_at=p.now, sealed_address=p.sealed_address, destroyed_at=None)
    )
    return int(existing)


def _tip_to_join(conn: Connection, config: Config, p: _Prepared) -> Any:
    """The informant's open tip this message continues, if any (DESIGN.md: follow-ups)."""
    row = conn.execute(
        select(
            TIPS.c.id,
            TIPS.c.public_id,
            TIPS.c.public_key,
            TIPS.c.last_inbound_at,
            TIPS.c.last_outbound_at,
        )
        .where(TIPS.c.informant_alias == p.alias, TIPS.c.status.not_in(list(CLOSED_STATUSES)))
        .order_by(TIPS.c.last_inbound_at.desc())
        .limit(1)
    ).first()
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


EVENTS = cast(Table, InboundEvent.__table__)
EVENT_PURPOSE = "inbound_event"
ATTACHMENT_SOURCE_PURPOSE = "attachment_source"
ATTACHMENT_FETCH_PURPOSE = "attachment_fetch"
UPLOAD_PURPOSE = "web_upload"  # a file from the web form, as uploaded, sealed to the transit key


def upload_binding(attachment_public_id: str) -> str:
    return f"upload:{attachment_public_id}"


def record_inbound(engine: Engine, config: Config, msg: InboundMessage, raw: bytes) -> bool:
    """The webhook's only write: the verified body, sealed to the transit key, as Zalo sent it.

    False for a redelivery (same OA and ``msg_id``).
    """
    key = dedup_key(config, msg.oa_id, msg.msg_id)
    sealed = seal(
        config.secrets.transit_public,
        raw,
        purpose=EVENT_PURPOSE,
        binding=InboundEvent.binding_for(key),
    )
    with engine.begin() as conn:
        statement = _INSERT_EVENT.get(conn.dialect.name, _INSERT_EVENT["default"])
        result = conn.execute(
            statement,
            {"dedup_key": key, "received_at": utcnow(), "sealed_event": sealed},
            # SQLAlchemy keeps an INSERT's rowcount only when asked (psycopg: -1 otherwise).
            execution_options={"preserve_rowcount": True},
        )
        return bool(result.rowcount)


# Built once: constructing a statement per request costs more than executing it.
_INSERT_EVENT: dict[str, Any] = {
    "sqlite": sqlite.insert(EVENTS).on_conflict_do_nothing(index_elements=["dedup_key"]),
    "postgresql": postgresql.insert(EVENTS).on_conflict_do_nothing(index_elements=["dedup_key"]),
    "default": insert(EVENTS),
}


EXPAND_LOCK = 0x7469706C696E6501  # pg advisory lock key: "tipline" + 1


def expand_pending(engine: Engine, config: Config, limit: int = 200) -> int:
    """Turn stored events into tips and messages; return how many were expanded."""
    with write_transaction(engine) as conn:
        query = (
            select(EVENTS.c.id, EVENTS.c.dedup_key, EVENTS.c.sealed_event)
            .where(EVENTS.c.processed_at.is_(None))
            .order_by(EVENTS.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            # One expander at a time. Every new tip moves the audit head, so concurrent batches
            # serialise on it anyway; run together they deadlock on it and on informants'
            # reply addresses, and each deadlock threw away a batch of up to 200 expansions
            # (tests/faults). SQLite's BEGIN IMMEDIATE already makes this so.
            if not conn.execute(select(func.pg_try_advisory_xact_lock(EXPAND_LOCK))).scalar():
                return 0
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        for row in rows:
            raw = open_sealed(
                config.secrets.transit_key,
                row.sealed_event,
                purpose=EVENT_PURPOSE,
                binding=InboundEvent.binding_for(row.dedup_key),
            )
            data = json.loads(raw)
            if isinstance(data, dict) and data.get("event_name") == WEB_EVENT:
                accepted = _accept_web(conn, config, data)
            else:
                msg = read_message(read_envelope(data))
                if msg is None:  # cannot happen: only message events are stored
                    raise ValueError("a stored inbound event carries no message")
                accepted = _accept(conn, config, msg)
            conn.execute(
                update(EVENTS)
                .where(EVENTS.c.id == row.id)
                .values(
                    processed_at=utcnow(),
                    sealed_event=None,
                    tip_public_id=accepted.tip_public_id or None,
                )
            )
    return len(rows)


def accept_message(engine: Engine, config: Config, msg: InboundMessage) -> Accepted:
    """Store ``msg`` as a tip message at once (what expansion does for each stored event)."""
    with write_transaction(engine) as conn:
        return _accept(conn, config, msg)


def _accept(conn: Connection, config: Config, msg: InboundMessage) -> Accepted:
    p = _prepare(config, msg)
    seen = conn.execute(
        select(TIPS.c.public_id)
        .join(MESSAGES, MESSAGES.c.tip_id == TIPS.c.id)
        .where(MESSAGES.c.dedup_key == p.dedup)
    ).scalar_one_or_none()
    if seen is not None:
        return Accepted(seen, new_tip=False, duplicate=True)
    # "STOP", "tình trạng", a 1–5 score: answered here, never stored as a tip message.
    command = informant.intercept(
        conn, config, msg, p.alias, partial(_upsert_reply_address, conn, p, msg.oa_id)
    )
    if command is not None:
        return Accepted(command, new_tip=False)
    address_id = _upsert_reply_address(conn, p, msg.oa_id)
    joined = _tip_to_join(conn, config, p)
    if joined is None:
        tip_id = _insert_tip(conn, config, p, msg.oa_id, address_id)
        tip_public_id, sealed_body = p.tip_public_id, p.sealed_body_new_tip
    else:
        tip_id, tip_public_id = joined.id, joined.public_id
        sealed_body = _seal_body(
            PublicKey.from_bytes(joined.public_key), p.message_public_id, p.body
        )
        conn.execute(
            update(TIPS)
            .where(TIPS.c.id == tip_id)
            .values(last_inbound_at=p.now, reply_address_id=address_id, updated_at=p.now)
        )
        if msg.location is not None:  # the answer to "please share a location" (routing)
            request_reroute(conn, config, tip_id, msg.location)
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
        tip_public = (
            p.tip_key.public_key if joined is None else PublicKey.from_bytes(joined.public_key)
        )
        sources = [
            (new_public_id(), str(item["type"]), item["payload"]) for item in msg.attachments
        ]
        _insert_attachments(conn, config, tip_public, tip_id, message_id, sources, p.now)
    if joined is None:
        # A new tip, by the system. Never the informant: the OA is the unit's own account.
        audit.record(
            conn,
            action=audit.actions.TIP_RECEIVED,
            object_id=tip_public_id,
            detail={"oa": msg.oa_id},
        )
    return Accepted(tip_public_id, new_tip=joined is None)


def _insert_id(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    return int(conn.execute(insert(table).values(**values).returning(table.c.id)).scalar_one())


def _insert_tip(
    conn: Connection,
    config: Config,
    p: _Prepared,
    oa_id: str | None,
    address_id: int,
    **web: Any,
) -> int:
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
            created_at=p.now,
            updated_at=p.now,
            last_inbound_at=p.now,
            dispatch_attempts=0,
            needs_location=False,
            escalation_level=0,
        )
        | web,
    )
    binding = KeyGrant.binding_for(Subject.TIP, tip_id, Holder.TRANSIT, 0)
    conn.execute(
        insert(GRANTS).values(
            subject_kind=Subject.TIP,
            subject_id=tip_id,
            holder_kind=Holder.TRANSIT,
            holder_id=0,
            sealed=grant(p.tip_key, config.secrets.transit_public, binding=binding),
            created_at=p.now,
        )
    )
    conn.execute(
        insert(OUTBOX).values(
            queue=JOBS["dispatch"].queue, job="dispatch", ref=p.tip_public_id, created_at=p.now
        )
    )
    return tip_id


WEB_EVENT = "web_report"  # a report from the /bao-tin form (tipline.intake.web)


def _accept_web(conn: Connection, config: Config, data: dict[str, Any]) -> Accepted:
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
    alias = keyed_digest(config.secrets.alias_key, "informant", "web\x00" + receipt_code)
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
        sealed_address=seal(
            config.secrets.relay_public,
            json.dumps({"kind": Channel.WEB}).encode(),
            purpose="reply_address",
            binding=ReplyAddress.binding_for(alias),
        ),
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
        config,
        p,
        None,
        address_id,
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
        _insert_attachments(conn, config, tip_key.public_key, tip_id, message_id, sources, now)
    audit.record(
        conn,
        action=audit.actions.TIP_RECEIVED,
        object_id=p.tip_public_id,
        detail={"channel": Channel.WEB},
    )
    return Accepted(p.tip_public_id, new_tip=True)


def _insert_attachments(
    conn: Connection,
    config: Config,
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
    for public_id, kind, source in sources:
        encoded = json.dumps(source, ensure_ascii=False).encode()
        rows.append(
            {
                "public_id": public_id,
                "tip_id": tip_id,
                "message_id": message_id,
                "kind": kind[:16],
                "state": AttachmentState.PENDING,
                "created_at": now,
                "sealed_source": seal(
                    tip_public,
                    encoded,
                    purpose=ATTACHMENT_SOURCE_PURPOSE,
                    binding=f"attachment:{public_id}",
                ),
                # Workers lose the tip key at dispatch; the media job reads this one instead.
                "sealed_fetch": seal(
                    config.secrets.transit_public,
                    encoded,
                    purpose=ATTACHMENT_FETCH_PURPOSE,
                    binding=f"attachment-fetch:{public_id}",
                ),
            }
        )
    conn.execute(insert(ATTACHMENTS), rows)
    conn.execute(
        insert(OUTBOX),
        [
            {
                "queue": JOBS["media"].queue,
                "job": "media",
                "ref": row["public_id"],
                "created_at": now,
            }
            for row in rows
        ],
    )
