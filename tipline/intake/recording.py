"""Recording verified inbound events: the one write of the webhook and the web form.

Zalo gets its answer fast and nothing it was told is stored can be lost: :func:`record_inbound`
is one INSERT of the event sealed to the current transit epoch (and to its unit's key, in case
that epoch's key is lost: tipline.transit), unique on a keyed hash of its ``msg_id``. That
row is the sealed tip content *and* its durable job; a redelivery hits the unique key and is
answered as a duplicate. The worker expands it later (:mod:`tipline.intake.expansion`).
"""

from __future__ import annotations

import re
import time
import zlib
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from keys import PublicKey, keyed_digest, keyed_digest_of_bytes, new_token
from tipline.config import EXPAND_LANES, Config
from tipline.db import prompt_write
from tipline.models import (
    InboundEvent,
    OfficialAccount,
    QuarantinedEvent,
    QuarantineReason,
    UnitKey,
    key_trust,
    utcnow,
)
from tipline.models.sealed_fields import INBOUND_EVENT, INBOUND_EVENT_FALLBACK, QUARANTINED_EVENT
from tipline.runtime import Runtime
from tipline.transit import PUBLIC_CACHE_SECONDS
from tipline.zalo.events import InboundMessage

WEB_EVENT = "web_report"  # a report from the /bao-tin form (tipline.intake.web)


def dedup_key(config: Config, oa_id: str, msg_id: str) -> str:
    return keyed_digest(config.secrets.alias_key, "msg_id", f"{oa_id}\x00{msg_id}")


def new_receipt_code() -> str:
    """ "TL-XXXX-XXXX": 40 random bits, easy to read out over the phone (unique column)."""
    raw = new_token(8)
    return f"TL-{raw[:4]}-{raw[4:]}"


# Crockford's look-alikes, as people read a code aloud or type it: O is 0, I and L are 1.
_LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normalise_receipt_code(text: str) -> str:
    """A receipt code as typed ("tl 0abc 1def", "0ABC1DEF", "TL-OABC-IDEF") in its one
    written form "TL-0ABC-1DEF"; anything that cannot be one comes back upper-cased."""
    bare = "".join(c for c in text.upper() if c.isalnum())
    body = bare.removeprefix("TL") if len(bare) == 10 else bare
    if len(body) != 8:
        return text.strip().upper()
    body = body.translate(_LOOK_ALIKES)
    return f"TL-{body[:4]}-{body[4:]}"


EVENTS = cast(Table, InboundEvent.__table__)
UNIT_KEYS = cast(Table, UnitKey.__table__)


def record_inbound(runtime: Runtime, msg: InboundMessage, raw: bytes) -> bool:
    """The webhook's only write: the verified body as Zalo sent it, sealed to the current
    transit epoch and, as a fallback, to the receiving OA's unit key (tipline.transit).

    False for a redelivery (same OA and ``msg_id``). :class:`tipline.transit.NoTransitKey`
    before any worker has started: the webhook answers 503 and Zalo retries.
    """
    return record_event(runtime, msg.oa_id, msg.msg_id, raw)


def record_event(runtime: Runtime, oa_id: str, msg_id: str, raw: bytes) -> bool:
    """:func:`record_inbound` for any event the worker expands (a message, an OA admin's
    reply, a withdrawal), de-duplicated on (``oa_id``, ``msg_id``)."""
    key = dedup_key(runtime.config, oa_id, msg_id)
    transit = runtime.transit.public()  # cached for a few seconds (tipline.transit)
    fallback = _intake_fallback(runtime, oa_id)
    with prompt_write(runtime.engine) as conn:
        return insert_event(conn, key, raw, transit, fallback, lane=lane_of(oa_id))


def lane_of(oa_id: str) -> int:
    """The OA's expansion lane (tipline.intake.expansion: each OA's events expand in order,
    lanes side by side). An informant is an alias of one OA (Zalo's user ids are the OA's), so
    an informant's messages are always in one lane. A spread, not a secret: CRC-32's high bits
    of the OA's public number (its low bits repeat for numbers that differ in their last
    digits); a tip row names its OA anyway, and nothing of the informant goes into it."""
    return (zlib.crc32(oa_id.encode()) >> 16) % EXPAND_LANES


def _intake_fallback(runtime: Runtime, oa_id: str) -> UnitKey | None:
    """The receiving OA's current unit key, verified (None: an unknown OA, or a key that is
    not the one certified), kept as long as the transit key (PUBLIC_CACHE_SECONDS).

    Read apart from the insert: on SQLite a transaction that reads and then writes fails at
    once when another writer committed in between. Kept, not read for each event: the read
    and its transaction were a fifth of the webhook's CPU (issue 15). A key rotated meanwhile
    is sealed to for those seconds at most, as the transit epoch is; its holders keep the
    retired versions that still open tips (tipline.keychain).
    """
    now = time.monotonic()
    known = runtime.fallback_keys.get(oa_id)
    if known is not None and now - known[0] < PUBLIC_CACHE_SECONDS:
        return known[1]
    with runtime.engine.connect() as conn:
        fallback = fallback_key_for_oa(conn, oa_id)
    if fallback is not None and not key_trust.accept(fallback.public):
        fallback = None  # the event is kept all the same, sealed to the transit epoch only
    runtime.fallback_keys[oa_id] = (now, fallback)
    return fallback


def fallback_key_for_oa(conn: Connection, oa_id: str) -> UnitKey | None:
    """The current key version of the unit that owns ``oa_id`` (None: an unknown OA)."""
    return _unit_key(conn.execute(_CURRENT_KEY_OF_OA, {"oa_id": oa_id}).first())


def fallback_key_for_unit(conn: Connection, unit_id: int) -> UnitKey | None:
    return _unit_key(conn.execute(_CURRENT_KEY_OF_UNIT, {"unit_id": unit_id}).first())


def _unit_key(row: Any) -> UnitKey | None:
    if row is None:
        return None
    return UnitKey(
        id=row.id,
        unit_id=row.unit_id,
        version=row.version,
        public_key=row.public_key,
        key_certificate=row.key_certificate,
    )


def _current_key_of(unit_id: Any) -> Any:
    """A unit's current key version (the newest not retired); built once for each use."""
    return (
        select(
            UNIT_KEYS.c.id,
            UNIT_KEYS.c.unit_id,
            UNIT_KEYS.c.version,
            UNIT_KEYS.c.public_key,
            UNIT_KEYS.c.key_certificate,
        )
        .where(UNIT_KEYS.c.unit_id == unit_id, UNIT_KEYS.c.retired_at.is_(None))
        .order_by(UNIT_KEYS.c.version.desc())
        .limit(1)
    )


_CURRENT_KEY_OF_OA = _current_key_of(
    select(OfficialAccount.unit_id)
    .where(OfficialAccount.oa_id == bindparam("oa_id"))
    .scalar_subquery()
)
_CURRENT_KEY_OF_UNIT = _current_key_of(bindparam("unit_id"))


def insert_event(
    conn: Connection,
    dedup_key: str,
    body: bytes,
    transit: PublicKey,
    fallback: UnitKey | None,
    *,
    lane: int = 0,
) -> bool:
    """Store one event, sealed, unless its dedup key is already stored; whether it was new.
    ``lane``: its OA's (:func:`lane_of`); a web report, which continues no earlier tip, any."""
    sealed = INBOUND_EVENT.seal(transit, body, dedup_key=dedup_key)
    sealed_fallback = (
        INBOUND_EVENT_FALLBACK.seal(
            fallback.public.with_version(fallback.version), body, dedup_key=dedup_key
        )
        if fallback is not None
        else None
    )
    statement = _INSERT_EVENT.get(conn.dialect.name, _INSERT_EVENT["default"])
    result = conn.execute(
        statement,
        {
            "dedup_key": dedup_key,
            "received_at": utcnow(),
            "sealed_event": sealed,
            "sealed_fallback": sealed_fallback,
            "fallback_key_id": fallback.id if fallback is not None else None,
            "lane": lane,
        },
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


# --- quarantine: signed events that cannot be read -----------------------------------------

QUARANTINE = cast(Table, QuarantinedEvent.__table__)
ACCOUNTS = cast(Table, OfficialAccount.__table__)
EVENT_NAME = re.compile(r"[a-z0-9_]{1,48}")


def quarantine_digest(config: Config, raw: bytes) -> str:
    return keyed_digest_of_bytes(config.secrets.alias_key, "quarantine", raw)


def record_quarantine(
    runtime: Runtime,
    raw: bytes,
    *,
    reason: QuarantineReason,
    oa_candidates: list[str],
    event_name: object = None,
) -> bool:
    """Keep a signed body intake could not read (tipline.models.quarantined_event): sealed to
    the unit key of the first of ``oa_candidates`` this install serves, else a digest only.
    False when these bytes are kept already (Zalo's retry)."""
    digest = quarantine_digest(runtime.config, raw)
    oa_id: str | None = None
    key: UnitKey | None = None
    if oa_candidates:
        with runtime.engine.connect() as conn:
            served = set(
                conn.execute(
                    select(ACCOUNTS.c.oa_id).where(ACCOUNTS.c.oa_id.in_(oa_candidates))
                ).scalars()
            )
            oa_id = next((c for c in oa_candidates if c in served), None)
            key = fallback_key_for_oa(conn, oa_id) if oa_id is not None else None
    if key is not None and not key_trust.accept(key.public):
        key = None  # kept as a digest only, like an event for an OA this install does not serve
    sealed = (
        QUARANTINED_EVENT.seal(key.public.with_version(key.version), raw, digest=digest)
        if key is not None
        else None
    )
    name = event_name if isinstance(event_name, str) and EVENT_NAME.fullmatch(event_name) else None
    with runtime.engine.begin() as conn:
        statement = _INSERT_QUARANTINE.get(conn.dialect.name, _INSERT_QUARANTINE["default"])
        result = conn.execute(
            statement,
            {
                "digest": digest,
                "received_at": utcnow(),
                "oa_id": oa_id,
                "event_name": name,
                "reason": str(reason),
                "size": len(raw),
                "sealed_event": sealed,
                "unit_key_id": key.id if key is not None else None,
            },
            execution_options={"preserve_rowcount": True},
        )
    return bool(result.rowcount)


_INSERT_QUARANTINE: dict[str, Any] = {
    "sqlite": sqlite.insert(QUARANTINE).on_conflict_do_nothing(index_elements=["digest"]),
    "postgresql": postgresql.insert(QUARANTINE).on_conflict_do_nothing(index_elements=["digest"]),
    "default": insert(QUARANTINE),
}
