"""The web form for people without Zalo (/bao-tin, /tra-cuu): the storage side.

A report takes the same path as a Zalo event: one row sealed to the transit key
(``inbound_events``), expanded by the worker into a tip (channel "web") and dispatched. The
form handler makes what only it can make: the tip key pair, wrapped under Argon2id of a
passphrase shown once to the informant, and the receipt code. Neither the passphrase nor
anything about the sender's connection (no IP address) is stored.

Officers' replies to a web tip are not sent anywhere (``Delivery.PORTAL``): the informant
reads them at /tra-cuu, where the passphrase unwraps the tip key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from keys import (
    PrivateKey,
    WrongSecret,
    generate_keypair,
    keyed_digest,
    new_passphrase,
    new_token,
    normalise_passphrase,
    open_sealed,
    seal,
    unwrap_with_secret,
    wrap_with_secret,
)
from tipline.config import Config
from tipline.intake.store import _INSERT_EVENT, EVENT_PURPOSE, WEB_EVENT, new_receipt_code
from tipline.models import Direction, InboundEvent, Message, Tip, new_public_id, utcnow
from tipline.outgoing import BODY_PURPOSE

MAX_TEXT = 20_000


@dataclass(frozen=True)
class Receipt:
    receipt_code: str
    passphrase: str


def informant_key_binding(receipt_code: str) -> str:
    return f"informant_key:{receipt_code}"


def submit_report(
    engine: Engine,
    config: Config,
    unit_public_id: str,
    text: str,
    location: tuple[float, float] | None = None,
) -> Receipt:
    """Store a web report for expansion; return what the informant is shown once."""
    receipt_code = new_receipt_code()
    passphrase = new_passphrase()
    tip_key = generate_keypair()
    wrapped = wrap_with_secret(
        tip_key,
        passphrase,
        cost=config.kdf_cost,
        binding=informant_key_binding(receipt_code),
    )
    body: dict[str, object] = {
        "event_name": WEB_EVENT,
        "unit": unit_public_id,
        "text": text,
        "receipt_code": receipt_code,
        "tip_key": base64.b64encode(tip_key.to_bytes()).decode(),
        "informant_key": base64.b64encode(wrapped).decode(),
    }
    if location is not None:
        body["location"] = {"lat": location[0], "lon": location[1]}
    key = keyed_digest(config.secrets.alias_key, "web_report", new_token(26))
    sealed = seal(
        config.secrets.transit_public,
        json.dumps(body, ensure_ascii=False).encode(),
        purpose=EVENT_PURPOSE,
        binding=InboundEvent.binding_for(key),
    )
    with engine.begin() as conn:
        statement = _INSERT_EVENT.get(conn.dialect.name, _INSERT_EVENT["default"])
        conn.execute(statement, {"dedup_key": key, "received_at": utcnow(), "sealed_event": sealed})
    return Receipt(receipt_code, passphrase)


def find_web_tip(session: Session, receipt_code: str) -> Tip | None:
    return session.scalars(
        select(Tip).where(Tip.receipt_code == receipt_code.strip().upper(), Tip.channel == "web")
    ).one_or_none()


def open_web_tip(tip: Tip, passphrase: str) -> PrivateKey:
    """The tip key, for the holder of the passphrase; :class:`WrongSecret` otherwise."""
    if tip.informant_key is None:
        raise WrongSecret("no informant key")
    return unwrap_with_secret(
        tip.informant_key,
        normalise_passphrase(passphrase),
        binding=informant_key_binding(tip.receipt_code),
    )


@dataclass(frozen=True)
class Entry:
    direction: str
    text: str
    at: object


def conversation(tip: Tip, tip_key: PrivateKey) -> list[Entry]:
    """The informant's messages and the officers' replies; internal notes never."""
    entries = []
    for message in tip.messages:
        if message.direction not in (Direction.INBOUND, Direction.OUTBOUND):
            continue
        body = json.loads(
            open_sealed(tip_key, message.sealed_body, purpose=BODY_PURPOSE, binding=message.binding)
        )
        text = body.get("text") if isinstance(body, dict) else None
        entries.append(
            Entry(message.direction, text if isinstance(text, str) else "", message.created_at)
        )
    return entries


def append_answer(session: Session, tip: Tip, text: str) -> Message:
    """The informant's follow-up, sealed to the tip's public key (no key needed to add)."""
    now = utcnow()
    message = Message(
        public_id=new_public_id(),
        tip=tip,
        direction=Direction.INBOUND,
        kind="text",
        sealed_body=b"",
        created_at=now,
        delivery_attempts=0,
    )
    message.sealed_body = seal(
        tip.public,
        json.dumps({"text": text, "event": "web_answer"}, ensure_ascii=False).encode(),
        purpose=BODY_PURPOSE,
        binding=message.binding,
    )
    tip.last_inbound_at = now
    session.add(message)
    return message
