"""The informant's side of the simulator: signed webhook events, as Zalo would post them.

``build_event`` makes the JSON of one ``user_send_*`` event (shapes of research/zalo.md §1.5)
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


def _attachment(
    image: UploadedMedia | None, file: UploadedMedia | None, location: tuple[float, float] | None
) -> tuple[str, dict[str, Any]] | None:
    if image is not None:
        return "image", {"type": "image", "payload": {"thumbnail": image.url, "url": image.url}}
    if file is not None:
        payload: dict[str, Any] = {
            "url": file.url, "name": file.name, "size": str(file.size), "type": file.type,
        }
        payload["checksum"] = file.checksum
        return "file", {"type": "file", "payload": payload}
    if location is not None:
        lat, lon = location
        return "location", {
            "type": "location",
            "payload": {"coordinates": {"latitude": str(lat), "longitude": str(lon)}},
        }
    return None


def build_event(
    oa_id: str,
    user_id: str,
    *,
    text: str | None = None,
    image: UploadedMedia | None = None,
    file: UploadedMedia | None = None,
    location: tuple[float, float] | None = None,
    app_id: str | None = None,
    timestamp_ms: int | None = None,
    msg_id: str | None = None,
) -> bytes:
    """The raw body of one ``user_send_text|image|file|location`` event; give exactly one."""
    given = [x is not None for x in (text, image, file, location)]
    if sum(given) != 1:
        raise ValueError("give exactly one of text, image, file, location")
    app_id = app_id or app_id_from_env()
    attachment = _attachment(image, file, location)
    kind = "text" if attachment is None else attachment[0]
    # Field order as in zalo.md §1.5: text (text and image events), msg_id, attachments.
    message: dict[str, Any] = {}
    if kind in ("text", "image"):
        message["text"] = text if text is not None else ""
    message["msg_id"] = msg_id or new_msg_id()
    if attachment is not None:
        message["attachments"] = [attachment[1]]
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    event = {
        "app_id": app_id,
        "sender": {"id": user_id},
        "user_id_by_app": user_id_by_app(app_id, user_id),
        "recipient": {"id": oa_id},
        "event_name": f"user_send_{kind}",
        "message": message,
        "timestamp": timestamp,
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


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
