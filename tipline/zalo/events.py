"""Reading a Zalo OA event into what intake needs, defensively (research/zalo.md §1, §8).

Nothing Zalo signed may be refused (Zalo answers a refusal by retrying, then by unsubscribing
the app from every OA): what cannot be read raises :class:`MalformedEvent` with a
:class:`~tipline.models.QuarantineReason`, and the webhook keeps the body in quarantine.
Where sources disagree on a shape (coordinates as strings or numbers, where an anonymous
chat's conversation id sits, a text without ``msg_id``), every variant is read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from keys import fingerprint
from tipline.models.enums import MessageKind, QuarantineReason


class MalformedEvent(ValueError):
    """The body is not a Zalo event we can read; ``reason`` says why, in a fixed word."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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
    # Media the worker downloads and cleans (image, file, audio, video, gif): {type, payload}.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    location: tuple[float, float] | None = None
    quote_msg_id: str | None = None
    # A location event whose coordinates are missing or unusable: kept, and said so.
    location_missing: bool = False
    # Shown to officers as text, never fetched by anyone: {url, description}.
    links: list[dict[str, str]] = field(default_factory=list)
    # A contact card (user_send_business_card): {name, phone}.
    card: dict[str, str] | None = None
    # A sticker's id ("" when Zalo gave none): Zalo's own picture, not evidence; not fetched.
    sticker: str | None = None

    @property
    def has_content_besides_text(self) -> bool:
        return bool(
            self.attachments
            or self.location is not None
            or self.location_missing
            or self.links
            or self.card is not None
            or self.sticker is not None
        )


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


# The timestamp field of a body that is not JSON: the signature covers it as written.
_RAW_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*(?:"(\d{1,20})"|(\d{1,20})(?=[\s,}]))')


def parse_body(raw: bytes) -> Any:
    """The JSON of ``raw``; :data:`UNREADABLE` when it is not JSON (or nests without end)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return UNREADABLE


UNREADABLE: Any = object()


def signed_timestamp(raw: bytes, body: Any) -> str | None:
    """The timestamp Zalo's signature covers: the body's ``timestamp`` (a string or an
    integer, as written), or for a body that is not JSON the one the bytes spell. None: the
    signature cannot be checked, so the body cannot be Zalo's."""
    if body is UNREADABLE:
        found = _RAW_TIMESTAMP.search(raw)
        return (found.group(1) or found.group(2)).decode() if found else None
    if not isinstance(body, dict):
        return None
    timestamp = body.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, str | int):
        return None
    return str(timestamp)


def read_envelope(body: Any) -> Envelope:
    if body is UNREADABLE or not isinstance(body, dict):
        raise MalformedEvent(QuarantineReason.UNREADABLE, "the body is not a JSON object")
    event_name = body.get("event_name")
    timestamp = body.get("timestamp")
    if not isinstance(event_name, str) or not event_name:
        raise MalformedEvent(QuarantineReason.NO_EVENT_NAME, "event_name is missing")
    if isinstance(timestamp, bool) or not isinstance(timestamp, str | int):
        raise MalformedEvent(QuarantineReason.UNREADABLE, "timestamp is missing")
    try:
        # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 text holds: accepted,
        # it would fail every later encode (alias, sealing) and block the expansion queue.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise MalformedEvent(
            QuarantineReason.NOT_UNICODE, "the body holds text that is not Unicode"
        ) from exc
    app_id = _id(body.get("app_id")) or ""
    return Envelope(app_id=app_id, event_name=event_name, timestamp=str(timestamp), body=body)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A coordinate written as a number or a string ("10.7642473", "10,7642473")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip().replace(",", ".")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _coordinates(payload: dict[str, Any]) -> tuple[float, float] | None:
    coords = payload.get("coordinates")
    if not isinstance(coords, dict):
        return None
    lat = _number(coords.get("latitude"))
    lon = _number(coords.get("longitude"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def oa_candidates(body: Any) -> list[str]:
    """Ids in ``body`` that may name the receiving OA, most likely first: a quarantined body's
    OA is named only if it is one of these *and* an OA this install serves."""
    if not isinstance(body, dict):
        return []
    found = [
        _id(body.get("oa_id")),
        _id(_object(body.get("recipient")).get("id")),
        _id(_object(body.get("sender")).get("id")),
    ]
    return [v for v in found if v is not None and v.isdigit() and len(v) <= MAX_OA_ID]


def _oa_id(*values: Any) -> str:
    for value in values:
        oa_id = _id(value)
        if oa_id is not None:
            if not oa_id.isdigit() or len(oa_id) > MAX_OA_ID:
                # Stored as is (tips.oa_id): a longer one was accepted here, then failed
                # expansion on PostgreSQL's varchar(32) and held up every event queued after it.
                raise MalformedEvent(QuarantineReason.NO_OA, "the OA id is not an OA id")
            return oa_id
    raise MalformedEvent(QuarantineReason.NO_OA, "no OA id")


def _msg_id(message: dict[str, Any], body: dict[str, Any]) -> str:
    """Zalo's ``msg_id``, the de-duplication key. A message without one is named by its whole
    body (Zalo retries the same bytes, so a retry is still recognised); one that has a
    ``msg_id`` that is not an id is not read."""
    value = message.get("msg_id")
    if value is None or value == "":
        canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return "body:" + fingerprint(canonical.encode())
    msg_id = _id(value)
    if msg_id is None:
        raise MalformedEvent(QuarantineReason.BAD_MSG_ID, "msg_id is not an id")
    return msg_id


def _anonymous_sender(body: dict[str, Any], message: dict[str, Any]) -> Sender:
    """The web-chat visitor: the conversation id in ``message`` per the sources, but read
    wherever a sample put it (body, sender, recipient; zalo.md §8.3)."""
    sender = _object(body.get("sender"))
    recipient = _object(body.get("recipient"))
    conversation = next(
        (
            c
            for c in (
                _id(message.get("conversation_id")),
                _id(body.get("conversation_id")),
                _id(sender.get("conversation_id")),
                _id(recipient.get("conversation_id")),
            )
            if c is not None
        ),
        None,
    )
    anonymous = (
        _id(sender.get("anonymous_id"))
        or _id(sender.get("id"))
        or _id(body.get("anonymous_id"))
        or _id(message.get("anonymous_id"))
    )
    if conversation is None or anonymous is None:
        raise MalformedEvent(
            QuarantineReason.NO_SENDER, "conversation_id or anonymous_id is missing"
        )
    return Sender(conversation_id=conversation, anonymous_id=anonymous)


def _message(body: dict[str, Any]) -> dict[str, Any]:
    message = body.get("message")
    if not isinstance(message, dict):
        raise MalformedEvent(QuarantineReason.NO_MESSAGE, "message is missing")
    return message


def _text(message: dict[str, Any]) -> str:
    text = message.get("text")
    text = text if isinstance(text, str) else ""
    if len(text) > MAX_TEXT:
        raise MalformedEvent(QuarantineReason.TOO_LONG, "text too long")
    return text


def _attachments(message: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    raw = message.get("attachments")
    if not isinstance(raw, list):
        return []
    if len(raw) > MAX_ATTACHMENTS:
        raise MalformedEvent(QuarantineReason.TOO_MANY_ATTACHMENTS, "too many attachments")
    found: list[tuple[str | None, dict[str, Any]]] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("payload"), dict):
            continue
        a_type = item.get("type")
        ok = isinstance(a_type, str) and ATTACHMENT_TYPE.match(a_type)
        found.append((a_type if ok else None, item["payload"]))
    return found


def read_message(envelope: Envelope) -> InboundMessage | None:
    """The message in a user or anonymous event; None for events that carry no tip."""
    kind = MESSAGE_EVENTS.get(envelope.event_name)
    if kind is None:
        return None
    body = envelope.body
    message = _message(body)
    recipient = _object(body.get("recipient"))
    oa_id = _oa_id(recipient.get("id"), body.get("oa_id"))
    if envelope.event_name.startswith("anonymous_"):
        who = _anonymous_sender(body, message)
    else:
        user_id = _id(_object(body.get("sender")).get("id"))
        if user_id is None:
            raise MalformedEvent(QuarantineReason.NO_SENDER, "sender.id is missing")
        who = Sender(user_id=user_id)
    msg_id = _msg_id(message, body)
    text = _text(message)
    attachments: list[dict[str, Any]] = []
    links: list[dict[str, str]] = []
    card: dict[str, str] | None = None
    sticker: str | None = None
    location = None
    for a_type, payload in _attachments(message):
        a_type = a_type or kind  # stored (attachments.kind, 16 characters), shown to officers
        if a_type == MessageKind.LOCATION:
            location = _coordinates(payload) or location
        elif kind is MessageKind.BUSINESS_CARD and card is None:
            # Type "link", the description a JSON string {phone, qrCodeUrl}, the contact's
            # name in the text (zalo.md §8.2). The QR code is not fetched.
            card = {"name": text, "phone": _card_phone(payload.get("description"))}
        elif a_type == MessageKind.LINK:
            links.append({"url": _short(payload.get("url")),
                          "description": _short(payload.get("description"))})
        elif a_type == MessageKind.STICKER:
            sticker = _id(payload.get("id")) or ""
        else:
            attachments.append({"type": a_type, "payload": payload})
    legacy_location = message.get("location")  # one source nests it here (zalo.md §1.3)
    if location is None and isinstance(legacy_location, dict):
        location = _coordinates({"coordinates": legacy_location})
    if kind is MessageKind.BUSINESS_CARD:
        card = card or {"name": text, "phone": ""}
        text = ""  # the contact's name, shown as the card's
    if kind is MessageKind.STICKER and sticker is None:
        sticker = ""
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
        location_missing=kind is MessageKind.LOCATION and location is None,
        links=links,
        card=card,
        sticker=sticker,
    )


MAX_SHOWN = 2000  # characters of a link's URL or description, a card's phone


def _short(value: Any) -> str:
    return value[:MAX_SHOWN] if isinstance(value, str) else ""


def _card_phone(description: Any) -> str:
    """The phone number of a contact card's description, ``{"phone", "qrCodeUrl"}`` as a JSON
    string; the description itself when it is not that (shown as text, never fetched)."""
    if not isinstance(description, str):
        return ""
    try:
        data = json.loads(description)
    except (ValueError, RecursionError):
        return _short(description)
    if not isinstance(data, dict):
        return _short(description)
    phone = data.get("phone")
    if isinstance(phone, str):
        return _short(phone)
    return str(phone) if isinstance(phone, int) and not isinstance(phone, bool) else ""


@dataclass(frozen=True)
class ConsoleReply:
    """An OA administrator's message to a user, typed in Zalo's own console (oa.zalo.me):
    an ``oa_send_*`` event with ``sender.admin_id`` (zalo.md §1.4). It belongs in the tip's
    record; it is never sent (Zalo delivered it). The admin's id is not kept."""

    event_name: str
    kind: MessageKind
    oa_id: str
    recipient: Sender
    msg_id: str
    text: str
    attachments: list[str] = field(default_factory=list)  # kinds only, never fetched
    links: list[dict[str, str]] = field(default_factory=list)
    sticker: str | None = None


@dataclass(frozen=True)
class Withdrawal:
    """``user_withdraw``: the user asks the OA's partners to delete their data (zalo.md §8.2).
    Handled like STOP, and the link from their Zalo id to their tips is destroyed."""

    event_name: str
    oa_id: str
    sender: Sender
    msg_id: str  # a management event has none: "withdraw:<user>:<timestamp>" (HMAC'd only)
    kind: str = "withdrawal"


WITHDRAW_EVENT = "user_withdraw"
CONSOLE_PREFIX = "oa_send_"


def read_console_reply(envelope: Envelope) -> ConsoleReply | None:
    """An OA admin's reply typed on Zalo; None for other events, and for the echo of a send
    through the API (ours: no ``admin_id``)."""
    name = envelope.event_name
    if not name.startswith(CONSOLE_PREFIX):
        return None
    body = envelope.body
    sender = _object(body.get("sender"))
    if _id(sender.get("admin_id")) is None:
        return None
    message = _message(body)
    oa_id = _oa_id(sender.get("id"), body.get("oa_id"))
    recipient = _object(body.get("recipient"))
    suffix = name.removeprefix(CONSOLE_PREFIX).removeprefix("anonymous_")
    if "anonymous" in name:
        conversation = _id(recipient.get("conversation_id")) or _id(
            message.get("conversation_id")
        )
        anonymous = _id(recipient.get("anonymous_id")) or _id(recipient.get("id"))
        if conversation is None or anonymous is None:
            raise MalformedEvent(QuarantineReason.NO_SENDER, "no anonymous recipient")
        to = Sender(conversation_id=conversation, anonymous_id=anonymous)
    else:
        user_id = _id(recipient.get("id"))
        if user_id is None:
            raise MalformedEvent(QuarantineReason.NO_SENDER, "recipient.id is missing")
        to = Sender(user_id=user_id)
    kinds: list[str] = []
    links: list[dict[str, str]] = []
    sticker: str | None = None
    for a_type, payload in _attachments(message):
        if a_type == MessageKind.LINK:
            links.append({"url": _short(payload.get("url")),
                          "description": _short(payload.get("description"))})
        elif a_type == MessageKind.STICKER:
            sticker = _id(payload.get("id")) or ""
        elif a_type is not None:
            kinds.append(a_type)
    try:
        kind = MessageKind(suffix)
    except ValueError:
        kind = MessageKind.TEXT  # oa_send_list and the like: shown by their text
    if kind in (MessageKind.NOTE, MessageKind.STOP_CONFIRMATION):
        kind = MessageKind.TEXT
    return ConsoleReply(
        event_name=name,
        kind=kind,
        oa_id=oa_id,
        recipient=to,
        msg_id=_msg_id(message, body),
        text=_text(message),
        attachments=kinds,
        links=links,
        sticker=sticker,
    )


def read_withdrawal(envelope: Envelope) -> Withdrawal | None:
    if envelope.event_name != WITHDRAW_EVENT:
        return None
    body = envelope.body
    oa_id = _oa_id(body.get("oa_id"), _object(body.get("recipient")).get("id"))
    sender = _object(body.get("sender"))
    candidates = (
        _id(_object(body.get("follower")).get("id")),
        _id(body.get("user_id")),
        _id(_object(body.get("user")).get("id")),
        _id(sender.get("id")),
    )
    user_id = next((c for c in candidates if c is not None and c != oa_id), None)
    if user_id is None:
        raise MalformedEvent(QuarantineReason.NO_SENDER, "no user in the withdrawal")
    return Withdrawal(
        event_name=envelope.event_name,
        oa_id=oa_id,
        sender=Sender(user_id=user_id),
        msg_id=f"withdraw:{user_id}:{envelope.timestamp}",
    )


def read_event(envelope: Envelope) -> InboundMessage | ConsoleReply | Withdrawal | None:
    """What the worker must expand from ``envelope``; None for an event Tipline ignores
    (follow, receipts, reactions, our own sends' echoes, a form's identity answers, any name
    nobody documents)."""
    return (
        read_message(envelope) or read_console_reply(envelope) or read_withdrawal(envelope)
    )
