"""The informant's side of the simulator: signed webhook events, as Zalo would post them.

``build_event`` makes the JSON of one ``user_send_*`` or ``anonymous_send_*`` event (every
kind and shape of research/zalo.md §1.5 and §8.2: text with or without a quote, image, file,
location with string coordinates, link, contact card, sticker, GIF, audio, video),
``build_oa_reply`` an OA admin's reply typed in Zalo's console, ``build_withdraw`` and
``build_user_event`` management events, ``build_bare_event`` an event with only a name; each
serialised once; ``post_event`` signs exactly those bytes with Zalo's formula
(``mac=sha256(app_id + raw body + timestamp + OA secret key)``, §1.2) and posts them. Keeping
the two apart lets tests and benchmarks tamper with bytes, replay them or post them in bulk.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from keys import file_checksum, keyed_digest, random_bytes, webhook_mac
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY

WEBHOOK_PATH = "/zalo/webhook"
MEDIA_PATH = "/_sim/media"
INTERACTIONS_PATH = "/_sim/interactions"


def app_id_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("ZALO_APP_ID") or DEMO_ZALO_APP_ID


def oa_secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("ZALO_OA_SECRET_KEY") or DEMO_ZALO_OA_SECRET_KEY


@dataclass(frozen=True)
class UploadedMedia:
    """A file the simulated informant sent, as the simulator's "CDN" now serves it."""

    url: str
    name: str
    size: int
    checksum: str  # MD5 hex, as Zalo sends it
    type: str  # the file extension, as in Zalo's file payloads ("pdf", "jpg")


def user_id_by_app(app_id: str, user_id: str) -> str:
    """The app-scoped id Zalo sends beside the OA-scoped one: stable per user, but different."""
    value = int(keyed_digest(app_id.encode(), "user_id_by_app", user_id)[:15], 16)
    derived = str(10**18 + value)
    return derived if derived != user_id else str(10**18 + value + 1)


def new_msg_id() -> str:
    """A Zalo-like message id: 20 hex characters."""
    return random_bytes(10).hex()


STICKER_URL = "https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid={}"
DEFAULT_STICKER = "bfe458bf64fa8da4d4eb"


def _media(kind: str, media: UploadedMedia) -> dict[str, Any]:
    """An attachment of ``kind`` as Zalo's payload table has it (zalo.md §8.2)."""
    if kind == "file":
        payload: dict[str, Any] = {
            "url": media.url, "name": media.name, "size": str(media.size), "type": media.type,
        }
        payload["checksum"] = media.checksum
    elif kind == "audio":
        payload = {"url": media.url}
    elif kind == "video":
        payload = {"url": media.url, "thumbnail": media.url, "description": ""}
    else:  # image, gif
        payload = {"thumbnail": media.url, "url": media.url}
    return {"type": kind, "payload": payload}


def _location(location: tuple[float, float]) -> dict[str, Any]:
    lat, lon = location
    # Strings, as in most of Zalo's samples (zalo.md §8.2).
    return {
        "type": "location",
        "payload": {"coordinates": {"latitude": str(lat), "longitude": str(lon)}},
    }


def _link(url: str, description: str) -> dict[str, Any]:
    return {"type": "link", "payload": {"url": url, "description": description, "thumbnail": ""}}


def _card(phone: str) -> dict[str, Any]:
    """A contact card: type ``link``, its description a JSON string (zalo.md §8.2)."""
    description = json.dumps({"phone": phone, "qrCodeUrl": ""})
    return {"type": "link", "payload": {"url": "", "description": description, "thumbnail": ""}}


def _sticker(sticker_id: str) -> dict[str, Any]:
    return {"type": "sticker", "payload": {"id": sticker_id,
                                           "url": STICKER_URL.format(sticker_id)}}


def _timestamp(timestamp_ms: int | None) -> str:
    return str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def build_event(
    oa_id: str,
    user_id: str,
    *,
    text: str | None = None,
    image: UploadedMedia | None = None,
    file: UploadedMedia | None = None,
    location: tuple[float, float] | None = None,
    link: str | tuple[str, str] | None = None,
    card: tuple[str, str] | None = None,
    sticker: str | None = None,
    gif: UploadedMedia | None = None,
    audio: UploadedMedia | None = None,
    video: UploadedMedia | None = None,
    quote_msg_id: str | None = None,
    anonymous: str | None = None,
    app_id: str | None = None,
    timestamp_ms: int | None = None,
    msg_id: str | None = None,
) -> bytes:
    """The raw body of one ``user_send_*`` event; give exactly one content.

    ``link``: a URL, or (URL, description); ``card``: (name, phone); ``sticker``: a sticker id.
    ``quote_msg_id``: the message this one replies to. ``anonymous``: a conversation id: the
    event comes from the OA's web chat (``anonymous_send_*``, ``user_id`` is the visitor's
    anonymous id); only text, image, file and sticker exist there.
    """
    contents = {
        "text": text, "image": image, "file": file, "location": location, "link": link,
        "business_card": card, "sticker": sticker, "gif": gif, "audio": audio, "video": video,
    }
    given = [kind for kind, value in contents.items() if value is not None]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of text, image, file, location, link, card, sticker, gif, "
            "audio, video"
        )
    kind = given[0]
    if anonymous is not None and kind not in ("text", "image", "file", "sticker"):
        raise ValueError("the web chat sends text, images, files and stickers only")
    app_id = app_id or app_id_from_env()
    attachment: dict[str, Any] | None = None
    message_text: str | None = None
    media = next((m for m in (image, file, gif, audio, video) if m is not None), None)
    if text is not None:
        message_text = text
    elif media is not None:
        attachment = _media(kind, media)
        message_text = "" if kind in ("image", "gif") else None
    elif location is not None:
        attachment = _location(location)
    elif link is not None:
        url, description = (link, "") if isinstance(link, str) else link
        attachment = _link(url, description)
        message_text = ""  # the URL is only in the attachment (zalo.md §8.2)
    elif card is not None:
        name, phone = card
        attachment = _card(phone)
        message_text = name  # the contact's name is the text
    else:
        attachment = _sticker(sticker or DEFAULT_STICKER)
    # Field order as in zalo.md §1.5: text (text and image events), msg_id, attachments.
    message: dict[str, Any] = {}
    if message_text is not None:
        message["text"] = message_text
    message["msg_id"] = msg_id or new_msg_id()
    if attachment is not None:
        message["attachments"] = [attachment]
    if quote_msg_id is not None:
        message["quote_msg_id"] = quote_msg_id
    if anonymous is not None:
        message["conversation_id"] = anonymous
        return _dumps({
            "app_id": app_id,
            "sender": {"id": user_id},
            "recipient": {"id": oa_id},
            "event_name": f"anonymous_send_{kind}",
            "message": message,
            "timestamp": _timestamp(timestamp_ms),
        })
    return _dumps({
        "app_id": app_id,
        "sender": {"id": user_id},
        "user_id_by_app": user_id_by_app(app_id, user_id),
        "recipient": {"id": oa_id},
        "event_name": f"user_send_{kind}",
        "message": message,
        "timestamp": _timestamp(timestamp_ms),
    })


def build_oa_reply(
    oa_id: str,
    user_id: str,
    text: str,
    *,
    admin_id: str | None = "1029384756102938475",
    app_id: str | None = None,
    timestamp_ms: int | None = None,
    msg_id: str | None = None,
) -> bytes:
    """``oa_send_text``: the OA's message to a user. With ``admin_id`` an OA admin typed it in
    Zalo's console (oa.zalo.me); without, it is the echo of a send through the API."""
    app_id = app_id or app_id_from_env()
    sender = {"id": oa_id} if admin_id is None else {"id": oa_id, "admin_id": admin_id}
    return _dumps({
        "app_id": app_id,
        "sender": sender,
        "recipient": {"id": user_id},
        "user_id_by_app": user_id_by_app(app_id, user_id),
        "event_name": "oa_send_text",
        "message": {"text": text, "msg_id": msg_id or new_msg_id()},
        "timestamp": _timestamp(timestamp_ms),
    })


def build_user_event(
    oa_id: str,
    user_id: str,
    event_name: str,
    *,
    app_id: str | None = None,
    timestamp_ms: int | None = None,
    **extra: Any,
) -> bytes:
    """A management event (``follow``, ``unfollow``, ``user_click_chatnow``,
    ``user_withdraw``, …): a flat ``oa_id`` and the user as ``follower.id``."""
    app_id = app_id or app_id_from_env()
    return _dumps({
        "oa_id": oa_id,
        "follower": {"id": user_id},
        "user_id_by_app": user_id_by_app(app_id, user_id),
        "event_name": event_name,
        "app_id": app_id,
        "timestamp": _timestamp(timestamp_ms),
        **extra,
    })


def build_withdraw(oa_id: str, user_id: str, **kwargs: Any) -> bytes:
    """``user_withdraw``: the user asks the OA's partners to delete their data."""
    return build_user_event(oa_id, user_id, "user_withdraw", **kwargs)


def build_bare_event(
    event_name: str, *, app_id: str | None = None, timestamp_ms: int | None = None
) -> bytes:
    """An event with nothing but its name: what a console's test delivery, or an event name
    nobody documents, may look like."""
    return _dumps({
        "app_id": app_id or app_id_from_env(),
        "event_name": event_name,
        "timestamp": _timestamp(timestamp_ms),
    })


# Events in which the user interacts with the OA: Zalo's windows count from the last one.
INTERACTIONS = ("user_send_", "anonymous_send_", "follow", "user_click_chatnow")


def record_interaction(
    to: str, raw: bytes, *, client: httpx.Client | None = None, timeout: float = 10.0
) -> bool:
    """Tell the simulator at ``<to>/_sim`` that the user of ``raw`` interacted with the OA at
    its timestamp, as Zalo knows because it delivered the event. False when ``raw`` is no
    interaction or no simulator answered (a real Tipline has none): never an error."""
    event = json.loads(raw)
    name = str(event.get("event_name", ""))
    if not name.startswith(INTERACTIONS):
        return False
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    body: dict[str, Any] = {
        "oa_id": str(event.get("oa_id") or event.get("recipient", {}).get("id", "")),
        "at": int(event["timestamp"]),
    }
    if name.startswith("anonymous_send_"):
        body["conversation_id"] = message.get("conversation_id")
    else:
        user = event.get("follower") or event.get("sender") or {}
        body["user_id"] = user.get("id")
    url = to.rstrip("/") + INTERACTIONS_PATH
    try:
        if client is not None:
            response = client.post(url, json=body)
        else:
            with httpx.Client(timeout=timeout) as own:
                response = own.post(url, json=body)
    except httpx.HTTPError:
        return False
    return response.is_success


def signature_header(
    raw: bytes, *, app_id: str, oa_secret_key: str, timestamp: str | None = None
) -> str:
    """``X-ZEvent-Signature`` for ``raw``; the timestamp is read from the body when not given."""
    if timestamp is None:
        timestamp = str(json.loads(raw)["timestamp"])
    return "mac=" + webhook_mac(app_id, raw, timestamp, oa_secret_key)


def post_event(
    to: str,
    raw: bytes,
    *,
    app_id: str | None = None,
    oa_secret_key: str | None = None,
    timestamp: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """Sign ``raw`` and POST exactly those bytes to ``<to>/zalo/webhook``.

    Pass a reusable ``client`` when posting many events (benchmarks); ``to`` is the base URL
    of a running Tipline, e.g. ``http://127.0.0.1:5000``.
    """
    header = signature_header(
        raw,
        app_id=app_id or app_id_from_env(),
        oa_secret_key=oa_secret_key or oa_secret_from_env(),
        timestamp=timestamp,
    )
    headers = {"Content-Type": "application/json", "X-ZEvent-Signature": header}
    url = to.rstrip("/") + WEBHOOK_PATH
    if client is not None:
        return client.post(url, content=raw, headers=headers)
    with httpx.Client(timeout=timeout) as own:
        return own.post(url, content=raw, headers=headers)


def upload_media(
    to: str, path: Path, *, client: httpx.Client | None = None, timeout: float = 30.0
) -> UploadedMedia:
    """Put a file on the simulator's stand-in for Zalo's CDN and describe it for an event."""
    data = path.read_bytes()
    url = to.rstrip("/") + MEDIA_PATH
    files = {"file": (path.name, data)}
    if client is not None:
        response = client.post(url, files=files)
    else:
        with httpx.Client(timeout=timeout) as own:
            response = own.post(url, files=files)
    response.raise_for_status()
    body = response.json()
    return UploadedMedia(
        url=str(body["url"]),
        name=path.name,
        size=len(data),
        checksum=file_checksum(data),
        type=path.suffix.lstrip(".").lower() or "bin",
    )
