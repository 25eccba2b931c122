"""Queueing a message to an informant: sealed to the tip for the record, to transit to send."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from keys import PublicKey
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
from tipline.models.sealed_fields import MESSAGE_BODY, MESSAGE_FOR_RELAY
from tipline.outbox import add_jobs
from tipline.zalo.client import MAX_TEXT


def seal_body(tip: Tip, message: Message, body: dict[str, object]) -> bytes:
    return MESSAGE_BODY.seal(
        tip.public,
        json.dumps(body, ensure_ascii=False).encode(),
        message_public_id=message.public_id,
    )


def queue_outbound(
    session: Session,
    tip: Tip,
    text: str,
    *,
    transit: PublicKey,
    author: Officer | None = None,
    kind: MessageKind = MessageKind.TEXT,
    to: dict[str, str] | None = None,
) -> Message:
    """Record ``text`` as an outbound message of ``tip`` and schedule its sending.

    ``to``: an address to send to instead of the tip's (the answer to STOP, sent after the
    informant's address key is gone). Zalo refuses texts over 2,000 characters; refuse them
    here, before anything is stored.
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
    # For the outbound worker, who cannot open the tip: sealed to the current transit epoch,
    # erased once sent (and unreadable anyway once that epoch is destroyed: tipline.transit).
    relay: dict[str, object] = {"text": text} if to is None else {"text": text, "to": to}
    message.sealed_for_relay = MESSAGE_FOR_RELAY.seal(
        transit, json.dumps(relay, ensure_ascii=False).encode(), message_public_id=message.public_id
    )
    session.add(message)
    add_jobs(session, [("send", message.public_id)])
    return message
