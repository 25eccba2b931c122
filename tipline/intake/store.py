"""Turning a verified inbound message into sealed rows: the only place intake writes.

The intake tier can append to a tip without being able to read it: every message is sealed to
the tip's public key, and the tip's private key is sealed to the transit key until dispatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import keyed_digest, new_token, seal
from tipline.config import Config
from tipline.intake.events import InboundMessage
from tipline.jobs.outbox import add_job
from tipline.keychain import grant_tip_to_transit, new_tip_key
from tipline.models import (
    CLOSED_STATUSES,
    Attachment,
    Direction,
    Message,
    ReplyAddress,
    Tip,
    new_public_id,
    utcnow,
)
from tipline.outgoing import seal_body


@dataclass(frozen=True)
class Accepted:
    tip_public_id: str
    new_tip: bool
    duplicate: bool = False


def informant_alias(config: Config, oa_id: str, identity: str) -> str:
    return keyed_digest(config.secrets.alias_key, "informant", f"{oa_id}\x00{identity}")


def dedup_key(config: Config, oa_id: str, msg_id: str) -> str:
    return keyed_digest(config.secrets.alias_key, "msg_id", f"{oa_id}\x00{msg_id}")


def new_receipt_code(session: Session) -> str:
    """ "TL-XXXX-XXXX": 40 random bits, easy to read out over the phone."""
    while True:
        raw = new_token(8)
        code = f"TL-{raw[:4]}-{raw[4:]}"
        if session.scalar(select(Tip.id).where(Tip.receipt_code == code)) is None:
            return code


def _reply_address(
    session: Session, config: Config, alias: str, msg: InboundMessage
) -> ReplyAddress:
    address = session.scalars(
        select(ReplyAddress).where(ReplyAddress.informant_alias == alias)
    ).one_or_none()
    now = utcnow()
    if address is None:
        address = ReplyAddress(public_id=new_public_id(), informant_alias=alias, oa_id=msg.oa_id)
        session.add(address)
    if address.sealed_address is None or address.destroyed_at is not None:
        # A new address, or the informant wrote again after "STOP": they are reachable again.
        address.sealed_address = seal(
            config.secrets.relay_public,
            json.dumps(msg.sender.address()).encode(),
            purpose="reply_address",
            binding=address.binding,
        )
        address.destroyed_at = None
    address.last_inbound_at = now
    return address


def _open_tip_to_join(session: Session, config: Config, alias: str, now: datetime) -> Tip | None:
    """The informant's open tip this message continues, if any (DESIGN.md: follow-ups)."""
    tip = session.scalars(
        select(Tip)
        .where(Tip.informant_alias == alias, Tip.status.not_in(list(CLOSED_STATUSES)))
        .order_by(Tip.last_inbound_at.desc())
        .limit(1)
    ).first()
    if tip is None:
        return None
    if tip.last_inbound_at >= now - config.followup_window:
        return tip
    answered = tip.last_outbound_at is not None and tip.last_outbound_at > tip.last_inbound_at
    if (
        answered
        and tip.last_outbound_at is not None
        and tip.last_outbound_at >= now - config.reply_window
    ):
        return tip  # a reply to an officer's question
    return None


def accept_message(session: Session, config: Config, msg: InboundMessage) -> Accepted:
    """Store ``msg`` sealed, joining or opening a tip; the caller commits."""
    key = dedup_key(config, msg.oa_id, msg.msg_id)
    seen = session.execute(
        select(Tip.public_id)
        .join(Message, Message.tip_id == Tip.id)
        .where(Message.dedup_key == key)
    ).scalar_one_or_none()
    if seen is not None:
        return Accepted(seen, new_tip=False, duplicate=True)

    now = utcnow()
    alias = informant_alias(config, msg.oa_id, msg.sender.identity)
    address = _reply_address(session, config, alias, msg)
    tip = _open_tip_to_join(session, config, alias, now)
    new_tip = tip is None
    if tip is None:
        tip_key = new_tip_key()
        tip = Tip(
            public_id=new_public_id(),
            receipt_code=new_receipt_code(session),
            oa_id=msg.oa_id,
            informant_alias=alias,
            reply_address=address,
            public_key=tip_key.public_key.to_bytes(),
            created_at=now,
        )
        session.add(tip)
        session.flush()
        grant_tip_to_transit(session, tip, tip_key, config.secrets.transit_public.to_bytes())
        add_job(session, "dispatch", tip.public_id)
    tip.last_inbound_at = now
    tip.reply_address = address

    message = Message(
        public_id=new_public_id(),
        tip=tip,
        direction=Direction.INBOUND,
        kind=msg.kind,
        dedup_key=key,
        sealed_body=b"",
        created_at=now,
    )
    body: dict[str, object] = {"text": msg.text, "event": msg.event_name}
    if msg.location is not None:
        body["location"] = {"lat": msg.location[0], "lon": msg.location[1]}
    if msg.attachments:
        body["attachments"] = [a["type"] for a in msg.attachments]
    message.sealed_body = seal_body(tip, message, body)
    session.add(message)
    for item in msg.attachments:
        attachment = Attachment(
            public_id=new_public_id(),
            tip_id=tip.id,
            message=message,
            kind=item["type"],
            sealed_source=b"",
        )
        attachment.sealed_source = seal(
            tip.public,
            json.dumps(item["payload"], ensure_ascii=False).encode(),
            purpose="attachment_source",
            binding=attachment.binding,
        )
        session.add(attachment)
    return Accepted(tip.public_id, new_tip=new_tip)
