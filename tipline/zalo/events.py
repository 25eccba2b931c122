"""Reading a Zalo OA event into what intake needs, defensively (research/zalo.md §1.3–1.5)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tipline.models.enums import MessageKind


class MalformedEvent(ValueError):
    """The body is not a Zalo event we can read."""


MESSAGE_EVENTS = {
    "user_send_text": MessageKind.TEXT,
    "user_send_image": MessageKind.IMAGE,
    "user_send_file": MessageKind.FILE,
    "user_send_audio": MessageKind.AUDIO,
    "user_send_video": MessageKind.VIDEO,
    "user_send_location": MessageKind.LOCATION,
    "user_send_link": MessageKind.LINK,
    "user_send_sticker": MessageKind.STICKER,
    "user_send_gif": MessageKind.GIF,
    "user_send_business_card": MessageKind.BUSINESS_CARD,
    # The OA's web chat without a Zalo login: the most anonymous channel Zalo offers.
    "anonymous_send_text": MessageKind.TEXT,
    "anonymous_send_image": MessageKind.IMAGE,
    "anonymous_send_file": MessageKind.FILE,
    "anonymous_send_sticker": MessageKind.STICKER,
}

MAX_TEXT = 20_000
MAX_ATTACHMENTS = 20
MAX_OA_ID = 32  # digits, as `tipline units set-oa` takes them
ATTACHMENT_TYPE = re.compile(r"^[a-z_]{1,16}$")


@dataclass(frozen=True)
class Sender:
    """Who to answer: a Zalo user, or an anonymous web-chat conversation. Never stored plain."""

    user_id: str | None = None
    conversation_id: str | None = None
    anonymous_id: str | None = None

    @property
    def identity(self) -> str:
        """A stable string for the alias HMAC."""
        if self.user_id:
            return "user:" + self.user_id
        return f"anon:{self.conversation_id}:{self.anonymous_id}"

    def address(self) -> dict[str, str]:
        if self.user_id:
            return {"kind": "user", "user_id": self.user_id}
        return {
            "kind": "anonymous",
            "conversation_id": self.conversation_id or "",
            "anonymous_id": self.anonymous_id or "",
        }


@dataclass(frozen=True)
class InboundMessage:
    event_name: str
    kind: MessageKind
    oa_id: str
    sender: Sender
    msg_id: str
    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    location: tuple[float, float] | None = None
    quote_msg_id: str | None = None


@dataclass(frozen=True)
class Envelope:
    """The parts of any event that are checked before anything else is read."""

    app_id: str
    event_name: str
    timestamp: str
    body: dict[str, Any]


def _id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 64:
        return value.strip()
    return None


def read_envelope(body: Any) -> Envelope:
    if not isinstance(body, dict):
        raise MalformedEvent("the body is not a JSON object")
    event_name = body.get("event_name")
    timestamp = body.get("timestamp")
    if not isinstance(event_name, str) or not event_name:
        raise MalformedEvent("event_name is missing")
    if isinstance(timestamp, bool) or not isinstance(timestamp, str | int):
        raise MalformedEvent("timestamp is missing")
    try:
        # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 text holds: accepted,
        # it would fail every later encode (alias, sealing) and block the expansion queue.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise MalformedEvent("the body holds text that is not Unicode") from exc
    app_id = _id(body.get("app_id")) or ""
    return Envelope(app_id=app_id, event_name=event_name, timestamp=str(timestamp), body=body)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _coordinates(payload: dict[str, Any]) -> tuple[float, float] | None:
    coords = payload.get("coordinates")
    if not isinstance(coords, dict):
        return None
    try:
        lat = float(coords["latitude"])
        lon = float(coords["longitude"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def read_message(envelope: Envelope) -> InboundMessage | None:
    """The message in a user or anonymous event; None for events that carry no tip."""
    kind = MESSAGE_EVENTS.get(envelope.event_name)
    if kind is None:
        return None
    body = envelope.body
    sender = _object(body.get("sender"))
    recipient = _object(body.get("recipient"))
    message = body.get("message")
    if not isinstance(message, dict):
        raise MalformedEvent("message is missing")
    oa_id = _id(recipient.get("id")) or _id(body.get("oa_id"))
    msg_id = _id(message.get("msg_id"))
    if oa_id is None or msg_id is None:
        raise MalformedEvent("recipient.id or message.msg_id is missing")
    if not oa_id.isdigit() or len(oa_id) > MAX_OA_ID:
        # Stored as is (tips.oa_id): a longer one was accepted here, then failed expansion
        # on PostgreSQL's varchar(32) and held up every event queued after it.
        raise MalformedEvent("recipient.id is not an OA id")
    if envelope.event_name.startswith("anonymous_"):
        conversation = _id(message.get("conversation_id")) or _id(body.get("conversation_id"))
        anonymous = _id(sender.get("anonymous_id")) or _id(sender.get("id"))
        if conversation is None or anonymous is None:
            raise MalformedEvent("conversation_id or anonymous_id is missing")
        who = Sender(conversation_id=conversation, anonymous_id=anonymous)
    else:
        user_id = _id(sender.get("id"))
        if user_id is None:
            raise MalformedEvent("sender.id is missing")
        who = Sender(user_id=user_id)
    text = message.get("text")
    text = text if isinstance(text, str) else ""
    if len(text) > MAX_TEXT:
        raise MalformedEvent("text too long")
    raw_attachments = message.get("attachments")
    attachments: list[dict[str, Any]] = []
    location = None
    if isinstance(raw_attachments, list):
        if len(raw_attachments) > MAX_ATTACHMENTS:
            raise MalformedEvent("too many attachments")
        for item in raw_attachments:
            if not isinstance(item, dict) or not isinstance(item.get("payload"), dict):
                continue
            payload = item["payload"]
            a_type = item.get("type")
            if not isinstance(a_type, str) or not ATTACHMENT_TYPE.match(a_type):
                a_type = kind  # stored (attachments.kind, 16 characters) and shown to officers
            if a_type == MessageKind.LOCATION:
                location = _coordinates(payload) or location
                continue
            attachments.append({"type": a_type, "payload": payload})
    legacy_location = message.get("location")  # one source nests it here (zalo.md §1.3)
    if location is None and isinstance(legacy_location, dict):
        location = _coordinates({"coordinates": legacy_location})
    if kind is MessageKind.LOCATION and location is None:
        raise MalformedEvent("location event without coordinates")
    return InboundMessage(
        event_name=envelope.event_name,
        kind=kind,
        oa_id=oa_id,
        sender=who,
        msg_id=msg_id,
        text=text,
        attachments=attachments,
        location=location,
        quote_msg_id=_id(message.get("quote_msg_id")),
    )
