"""Zalo webhook bodies for tests, in the shapes of research/zalo.md §1.5 and §8, signed as Zalo
does.

:func:`event` is a user's message event; the builders below it make every other shape the
research notes list (console replies, management events, anonymous web chat, withdrawals).
:data:`SHAPES` names one body of each shape with where Tipline must put it
(tests/test_zalo_event_shapes.py posts them all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keys import webhook_mac
from tests.conftest import APP_ID, COMMUNE_OA, OA_SECRET

USER = "2468458835296197922"
USER_BY_APP = "5521772797175877301"
ADMIN = "7766554433221100998"  # an OA admin typing in oa.zalo.me (sender.admin_id)
TS = "1718000100000"


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def event(
    event_name: str = "user_send_text",
    *,
    text: str | None = "Có người buôn bán ma túy ở hẻm 12",
    msg_id: str | None = "96d3cdf3af150460909a",
    user: str = USER,
    oa: str = COMMUNE_OA,
    timestamp: str = TS,
    attachments: list[dict[str, Any]] | None = None,
    app_id: str = APP_ID,
    quote_msg_id: str | None = None,
) -> bytes:
    """A user's message event; ``text`` or ``msg_id`` None leaves the field out."""
    message: dict[str, Any] = {}
    if text is not None:
        message["text"] = text
    if msg_id is not None:
        message["msg_id"] = msg_id
    if attachments is not None:
        message["attachments"] = attachments
    if quote_msg_id is not None:
        message["quote_msg_id"] = quote_msg_id
    body = {
        "app_id": app_id,
        "sender": {"id": user},
        "user_id_by_app": USER_BY_APP,
        "recipient": {"id": oa},
        "event_name": event_name,
        "message": message,
        "timestamp": timestamp,
    }
    return dumps(body)


def signed_headers(raw: bytes, *, secret: str = OA_SECRET, app_id: str = APP_ID) -> dict[str, str]:
    timestamp = str(json.loads(raw)["timestamp"])
    return {
        "Content-Type": "application/json",
        "X-ZEvent-Signature": "mac=" + webhook_mac(app_id, raw, timestamp, secret),
    }


# --- attachments (zalo.md §8.2's table) ------------------------------------------------------

CDN = "https://f21-zpc.zdn.vn"


def image(url: str = f"{CDN}/jpg/anh.jpg") -> dict[str, Any]:
    return {"type": "image", "payload": {"thumbnail": url, "url": url}}


def gif(url: str = f"{CDN}/gif/g.gif") -> dict[str, Any]:
    return {"type": "gif", "payload": {"thumbnail": f"{CDN}/jpg/g.jpg", "url": url}}


def link(
    url: str = "https://baomoi.example/bai-bao-123", description: str = "Bài báo về vụ việc"
) -> dict[str, Any]:
    return {
        "type": "link",
        "payload": {"thumbnail": f"{CDN}/jpg/t.jpg", "description": description, "url": url},
    }


def audio() -> dict[str, Any]:
    return {"type": "audio", "payload": {"url": f"{CDN}/voice/ghi-am.amr"}}


def video() -> dict[str, Any]:
    return {
        "type": "video",
        "payload": {"url": f"{CDN}/v/clip.mp4", "thumbnail": f"{CDN}/jpg/v.jpg",
                    "description": ""},
    }


def sticker(sticker_id: str = "bfe458bf64fa8da4d4eb") -> dict[str, Any]:
    return {
        "type": "sticker",
        "payload": {
            "id": sticker_id,
            "url": f"https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid={sticker_id}",
        },
    }


def location(latitude: object = "10.7642473", longitude: object = "106.6564314") -> dict[str, Any]:
    return {"type": "location", "payload": {"coordinates": {"latitude": latitude,
                                                            "longitude": longitude}}}


def file(name: str = "bang-chung.pdf") -> dict[str, Any]:
    return {
        "type": "file",
        "payload": {"size": "204800", "name": name, "checksum": "9e107d9d372bb6826bd81d3542a419d6",
                    "type": "pdf", "url": f"{CDN}/f/{name}"},
    }


def business_card(name: str = "Trần Văn Bảy", phone: str = "0912345678") -> bytes:
    """A contact card: type ``link``, ``description`` a JSON string, the name in ``text``."""
    description = json.dumps({"phone": phone, "qrCodeUrl": f"{CDN}/qr/abc.png"})
    attachment = {
        "type": "link",
        "payload": {"thumbnail": f"{CDN}/avatar/a.jpg", "description": description,
                    "url": f"{CDN}/qr/abc.png"},
    }
    return event("user_send_business_card", text=name, msg_id="card-1", attachments=[attachment])


# --- events that are not a user's message ---------------------------------------------------


def oa_send(
    kind: str = "text",
    *,
    text: str = "Cảm ơn bạn đã cung cấp thông tin",
    msg_id: str = "63ecf43f0df7dba892e6",
    admin_id: str | None = ADMIN,
    user: str = USER,
    oa: str = COMMUNE_OA,
    attachments: list[dict[str, Any]] | None = None,
    timestamp: str = "1718000600000",
) -> bytes:
    """``oa_send_<kind>``: the OA's message to a user, echoed; typed in oa.zalo.me when it
    carries ``sender.admin_id`` (zalo.md §1.4), sent by an API (ours) when it does not."""
    sender: dict[str, str] = {"id": oa}
    if admin_id is not None:
        sender["admin_id"] = admin_id
    message: dict[str, Any] = {"text": text, "msg_id": msg_id}
    if attachments is not None:
        message["attachments"] = attachments
    return dumps({
        "app_id": APP_ID,
        "sender": sender,
        "recipient": {"id": user},
        "user_id_by_app": USER_BY_APP,
        "event_name": f"oa_send_{kind}",
        "message": message,
        "timestamp": timestamp,
    })


def management(event_name: str, *, user: str = USER, oa: str = COMMUNE_OA,
               timestamp: str = "1718000000000", **extra: Any) -> bytes:
    """``follow``, ``unfollow``, ``user_click_chatnow``, tags, ``user_withdraw``: a flat
    ``oa_id`` and the user as ``follower.id`` (zalo.md §1.5, §8.2)."""
    return dumps({
        "oa_id": oa,
        "follower": {"id": user},
        "user_id_by_app": USER_BY_APP,
        "event_name": event_name,
        "app_id": APP_ID,
        "timestamp": timestamp,
        **extra,
    })


def withdraw(*, user: str = USER, oa: str = COMMUNE_OA, timestamp: str = "1718000900000") -> bytes:
    """``user_withdraw``: the user asks the OA's partners to delete their data."""
    return management("user_withdraw", user=user, oa=oa, timestamp=timestamp)


def user_to_oa(event_name: str, message: dict[str, Any], *, user: str = USER,
               oa: str = COMMUNE_OA, timestamp: str = "1718000700000") -> bytes:
    """Delivery, read and reaction events: sender the user, recipient the OA."""
    return dumps({
        "app_id": APP_ID,
        "sender": {"id": user},
        "recipient": {"id": oa},
        "event_name": event_name,
        "message": message,
        "timestamp": timestamp,
    })


def oa_to_user(event_name: str, message: dict[str, Any], *, user: str = USER,
               oa: str = COMMUNE_OA, timestamp: str = "1718000700000") -> bytes:
    """Delivery and read receipts as §8.2 describes them: the OA in sender, the user in
    recipient."""
    return dumps({
        "app_id": APP_ID,
        "sender": {"id": oa},
        "recipient": {"id": user},
        "event_name": event_name,
        "message": message,
        "timestamp": timestamp,
    })


def anonymous(
    kind: str = "text",
    *,
    text: str = "Có đánh bạc ở quán cà phê",
    msg_id: str = "an-1",
    conversation_id: str = "conv-91",
    anonymous_id: str = "anon-7f3a",
    where: str = "message",
    oa: str = COMMUNE_OA,
    attachments: list[dict[str, Any]] | None = None,
) -> bytes:
    """``anonymous_send_<kind>`` from the OA's web chat: the visitor in ``sender.id``, the
    conversation in ``message.conversation_id`` (``where`` puts it elsewhere: "body",
    "sender" or "recipient", as unconfirmed samples do, zalo.md §8.3)."""
    message: dict[str, Any] = {"text": text, "msg_id": msg_id}
    if attachments is not None:
        message["attachments"] = attachments
    body: dict[str, Any] = {
        "app_id": APP_ID,
        "event_name": f"anonymous_send_{kind}",
        "sender": {"id": anonymous_id},
        "recipient": {"id": oa},
        "message": message,
        "timestamp": "1718000700000",
    }
    if where == "message":
        message["conversation_id"] = conversation_id
    elif where == "body":
        body["conversation_id"] = conversation_id
    else:
        body[where]["conversation_id"] = conversation_id
    return dumps(body)


def submit_info() -> bytes:
    """``user_submit_info``: identity a user typed into a form. Tipline never asks for it."""
    return dumps({
        "sender": {"id": USER},
        "recipient": {"id": COMMUNE_OA},
        "event_name": "user_submit_info",
        "app_id": APP_ID,
        "timestamp": "1540368141908",
        "info": {"name": "Nguyễn Văn A", "phone": "84912345678", "user_dob": "30/10/1999",
                 "gender": "Nam", "full_address": {"user_city": "Cà Mau",
                                                   "user_ward": "Lương Thế Trân",
                                                   "user_address": "12 hẻm 5"}},
    })


def console_test() -> bytes:
    """What a console "test" delivery may look like: an event name, a timestamp, no message."""
    return dumps({"app_id": APP_ID, "event_name": "user_send_text", "timestamp": TS})


# --- every shape, and where it must end -----------------------------------------------------


@dataclass(frozen=True)
class Shape:
    raw: bytes
    # "message" (a tip message of ``kind``), "console" (an officer-visible OA admin reply),
    # "ignored", "quarantined", "withdrawn" (the informant's address erased).
    ends: str
    kind: str | None = None


SHAPES: dict[str, Shape] = {
    "user_send_text": Shape(event(msg_id="s-text"), "message", "text"),
    "user_send_text with quote_msg_id": Shape(
        event(text="Đúng rồi, chính hắn", msg_id="s-quote", quote_msg_id="s-text"),
        "message", "text",
    ),
    "user_send_text without msg_id": Shape(event(text="Không có msg_id"), "message", "text"),
    "user_send_image": Shape(
        event("user_send_image", text="", msg_id="s-image", attachments=[image()]),
        "message", "image",
    ),
    "user_send_gif": Shape(
        event("user_send_gif", text="", msg_id="s-gif", attachments=[gif()]), "message", "gif"
    ),
    "user_send_link (no text)": Shape(
        event("user_send_link", text="", msg_id="s-link", attachments=[link()]),
        "message", "link",
    ),
    "user_send_audio": Shape(
        event("user_send_audio", text=None, msg_id="s-audio", attachments=[audio()]),
        "message", "audio",
    ),
    "user_send_video": Shape(
        event("user_send_video", text=None, msg_id="s-video", attachments=[video()]),
        "message", "video",
    ),
    "user_send_sticker": Shape(
        event("user_send_sticker", text=None, msg_id="s-sticker", attachments=[sticker()]),
        "message", "sticker",
    ),
    "user_send_location (strings)": Shape(
        event("user_send_location", text=None, msg_id="s-loc", attachments=[location()]),
        "message", "location",
    ),
    "user_send_location (numbers)": Shape(
        event("user_send_location", text=None, msg_id="s-loc-n",
              attachments=[location(10.7642473, 106.6564314)]),
        "message", "location",
    ),
    "user_send_location (no coordinates)": Shape(
        event("user_send_location", text=None, msg_id="s-loc-0",
              attachments=[{"type": "location", "payload": {}}]),
        "message", "location",
    ),
    "user_send_file": Shape(
        event("user_send_file", text=None, msg_id="s-file", attachments=[file()]),
        "message", "file",
    ),
    "user_send_business_card": Shape(business_card(), "message", "business_card"),
    "anonymous_send_text": Shape(anonymous(msg_id="s-anon"), "message", "text"),
    "anonymous_send_text (conversation_id in the body)": Shape(
        anonymous(msg_id="s-anon-b", where="body"), "message", "text"
    ),
    "anonymous_send_text (conversation_id in sender)": Shape(
        anonymous(msg_id="s-anon-s", where="sender"), "message", "text"
    ),
    "anonymous_send_image": Shape(
        anonymous("image", text="", msg_id="s-anon-i", attachments=[image()]), "message", "image"
    ),
    "anonymous_send_sticker": Shape(
        anonymous("sticker", text="", msg_id="s-anon-st", attachments=[sticker()]),
        "message", "sticker",
    ),
    "anonymous_send_file": Shape(
        anonymous("file", text="", msg_id="s-anon-f", attachments=[file()]), "message", "file"
    ),
    "oa_send_text by an OA admin": Shape(oa_send(msg_id="s-oa-admin"), "console", "text"),
    "oa_send_image by an OA admin": Shape(
        oa_send("image", text="", msg_id="s-oa-img", attachments=[image()]), "console", "image"
    ),
    "oa_send_sticker by an OA admin": Shape(
        oa_send("sticker", text="", msg_id="s-oa-st", attachments=[sticker()]),
        "console", "sticker",
    ),
    "oa_send_text echo of an API send": Shape(oa_send(msg_id="s-oa-api", admin_id=None),
                                              "ignored"),
    "oa_send_list echo": Shape(oa_send("list", msg_id="s-oa-list", admin_id=None), "ignored"),
    "oa_send_file echo": Shape(oa_send("file", msg_id="s-oa-file", admin_id=None), "ignored"),
    "oa_send_gif echo": Shape(oa_send("gif", msg_id="s-oa-gif", admin_id=None), "ignored"),
    "follow": Shape(management("follow", source="oa_profile"), "ignored"),
    "unfollow": Shape(management("unfollow", source="oa_profile"), "ignored"),
    "user_click_chatnow": Shape(management("user_click_chatnow"), "ignored"),
    "add_user_to_tag": Shape(management("add_user_to_tag", tag_name="x"), "ignored"),
    "remove_user_from_tag": Shape(management("remove_user_from_tag", tag_name="x"), "ignored"),
    "remove_tag": Shape(management("remove_tag", tag_name="x"), "ignored"),
    "update_user_info": Shape(management("update_user_info"), "ignored"),
    "user_submit_info": Shape(submit_info(), "ignored"),
    "user_received_message": Shape(oa_to_user("user_received_message", {"msg_id": "s-text"}),
                                   "ignored"),
    "user_seen_message": Shape(oa_to_user("user_seen_message", {"msg_ids": ["s-text"]}),
                               "ignored"),
    "user_reacted_message": Shape(
        user_to_oa("user_reacted_message", {"msg_id": "s-text", "react_icon": "/-heart"}),
        "ignored",
    ),
    "oa_reacted_message": Shape(
        oa_to_user("oa_reacted_message", {"msg_id": "s-text", "react_icon": "/-strong"}),
        "ignored",
    ),
    "an event name nobody documents": Shape(
        dumps({"app_id": APP_ID, "event_name": "something_new_from_zalo", "timestamp": TS}),
        "ignored",
    ),
    "a console test delivery (no message)": Shape(console_test(), "quarantined"),
    "a message event whose message is not an object": Shape(
        dumps({**json.loads(event(msg_id="s-bad")), "message": "?"}), "quarantined"
    ),
    "a message event without a sender": Shape(
        dumps({k: v for k, v in json.loads(event(msg_id="s-nosender")).items()
               if k != "sender"}),
        "quarantined",
    ),
    "user_withdraw": Shape(withdraw(), "withdrawn"),
}
