"""Recording verified inbound events: the one write of the webhook and the web form.

Zalo gets its answer fast and nothing it was told is stored can be lost: :func:`record_inbound`
is one INSERT of the event sealed to the transit key, unique on a keyed hash of its
``msg_id``. That row is the sealed tip content *and* its durable job; a redelivery hits the
unique key and is answered as a duplicate. The worker expands it later
(:mod:`tipline.intake.expansion`).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.dialects import postgresql, sqlite

from keys import keyed_digest, new_token
from tipline.config import Config
from tipline.models import InboundEvent, utcnow
from tipline.models.sealed_fields import INBOUND_EVENT
from tipline.zalo.events import InboundMessage

WEB_EVENT = "web_report"  # a report from the /bao-tin form (tipline.intake.web)


def dedup_key(config: Config, oa_id: str, msg_id: str) -> str:
    return keyed_digest(config.secrets.alias_key, "msg_id", f"{oa_id}\x00{msg_id}")


def new_receipt_code() -> str:
    """ "TL-XXXX-XXXX": 40 random bits, easy to read out over the phone (unique column)."""
    raw = new_token(8)
    return f"TL-{raw[:4]}-{raw[4:]}"


EVENTS = cast(Table, InboundEvent.__table__)


def record_inbound(engine: Engine, config: Config, msg: InboundMessage, raw: bytes) -> bool:
    """The webhook's only write: the verified body, sealed to the transit key, as Zalo sent it.

    False for a redelivery (same OA and ``msg_id``).
    """
    key = dedup_key(config, msg.oa_id, msg.msg_id)
    sealed = INBOUND_EVENT.seal(config.secrets.transit_public, raw, dedup_key=key)
    with engine.begin() as conn:
        return insert_event(conn, key, sealed)


def insert_event(conn: Connection, dedup_key: str, sealed: bytes) -> bool:
    """Store one sealed event unless its dedup key is already stored; whether it was new."""
    statement = _INSERT_EVENT.get(conn.dialect.name, _INSERT_EVENT["default"])
    result = conn.execute(
        statement,
        {"dedup_key": dedup_key, "received_at": utcnow(), "sealed_event": sealed},
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
