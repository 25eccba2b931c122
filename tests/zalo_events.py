"""Zalo webhook bodies for tests, in the shapes of research/zalo.md §1.5, signed as Zalo does."""

from __future__ import annotations

import json
from typing import Any

from keys import webhook_mac
from tests.conftest import APP_ID, COMMUNE_OA, OA_SECRET

USER = "2468458835296197922"


def event(
    event_name: str = "user_send_text",
    *,
    text: str = "Có người buôn bán ma túy ở hẻm 12",
    msg_id: str = "96d3cdf3af150460909a",
    user: str = USER,
    oa: str = COMMUNE_OA,
    timestamp: str = "1718000100000",
    attachments: list[dict[str, Any]] | None = None,
    app_id: str = APP_ID,
) -> bytes:
    message: dict[str, Any] = {"text": text, "msg_id": msg_id}
    if attachments is not None:
        message["attachments"] = attachments
    body = {
        "app_id": app_id,
        "sender": {"id": user},
        "user_id_by_app": "5521772797175877301",
        "recipient": {"id": oa},
        "event_name": event_name,
        "message": message,
        "timestamp": timestamp,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def signed_headers(raw: bytes, *, secret: str = OA_SECRET, app_id: str = APP_ID) -> dict[str, str]:
    timestamp = str(json.loads(raw)["timestamp"])
    return {
        "Content-Type": "application/json",
        "X-ZEvent-Signature": "mac=" + webhook_mac(app_id, raw, timestamp, secret),
    }
