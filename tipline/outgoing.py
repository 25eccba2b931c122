"""Queueing a message to an informant: sealed to the tip for the record, to the relay to send."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from keys import PublicKey, seal
from tipline.jobs.outbox import add_job
from tipline.models import (
    Channel,
    Delivery,
    Direction,
    Message,
    MessageKind,
    Officer,
    Tip,
    new_public_id,
    utcnow,
)
from tipline.zalo.client import MAX_TEXT

RELAY_PURPOSE = "outgoing"
BODY_PURPOSE = "message"


def seal_body(tip: Tip, message: Message, body: dict[str, object]) -> bytes:
    return seal(
        tip.public,
        json.dumps(body, ensure_ascii=False).encode(),
        purpose=BODY_PURPOSE,
        binding=message.binding,
    )


def queue_outbound(
    session: Session,
    tip: Tip,
    text: str,
    *,
    relay_public: PublicKey,
    author: Officer | None = None,
    kind: MessageKind = MessageKind.TEXT,
) -> Message:
    """Record ``text`` as an outbound message of ``tip`` and schedule its sending.

    Zalo refuses texts over 2,000 characters; refuse them here, before anything is stored.
    """
    if not text.strip() or len(text) > MAX_TEXT:
        raise ValueError(f"a message to an informant has 1 to {MAX_TEXT} characters")
    message = Message(
        public_id=new_public_id(),
        tip=tip,
        direction=Direction.OUTBOUND,
        kind=kind,
        sealed_body=b"",
        delivery=Delivery.QUEUED,
        author_id=author.id if author else None,
    )
    message.sealed_body = seal_body(tip, message, {"text": text})
    if tip.channel == Channel.WEB:
        # A web-form informant has no address to send to: the reply waits, sealed to the tip
        # key, for them to read it at /tra-cuu with their passphrase.
        now = utcnow()
        message.delivery = Delivery.PORTAL
        message.delivered_at = now
        tip.last_outbound_at = now
        session.add(message)
        return message
    message.sealed_for_relay = seal(
        relay_public, text.encode(), purpose=RELAY_PURPOSE, binding=message.binding
    )
    session.add(message)
    add_job(session, "send", message.public_id)
    return message
