"""Every kind of message an informant sends on Zalo reaches the officer, on the tip page, in
Vietnamese: links and contact cards as text (never fetched), stickers, GIFs, locations with or
without coordinates, and replies that quote an earlier message."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import expand
from tests.triage_helpers import login
from tests.zalo_events import (
    business_card,
    event,
    gif,
    link,
    location,
    signed_headers,
    sticker,
)
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import Attachment, Message, OutboxEntry, Tip
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

FIRST = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id="k-first")


def deliver(client: FlaskClient, *events: bytes) -> str:
    """Post ``events`` as Zalo does, expand them, dispatch the tip; its public id."""
    for raw in events:
        response = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
        assert response.status_code == 200, response.get_json()
    expand(client.application.extensions["tipline"])
    runtime: Runtime = client.application.extensions["tipline"]
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    dispatch_tip(public_id)
    return public_id


def tip_page(client: FlaskClient, units: dict[str, str], public_id: str) -> str:
    login(client, "canbo", units["totp:canbo"])
    response = client.get(f"/triage/tips/{public_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def article(page: str, n: int) -> str:
    """The n-th message of the conversation (0 first)."""
    found = re.findall(r'<article class="msg [^"]*"[^>]*>.*?</article>', page, re.S)
    return found[n]


def test_a_link_is_shown_as_text_and_never_fetched(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    url = "https://baomoi.example/vu-viec-123?a=1&b=2"
    raw = event("user_send_link", text="", msg_id="k-link",
                attachments=[link(url, "Bài báo <b>vụ việc</b>")])
    page = tip_page(client, units, deliver(client, FIRST, raw))
    shown = article(page, 1)
    assert "Liên kết" in shown
    assert "https://baomoi.example/vu-viec-123?a=1&amp;b=2" in shown
    assert "Bài báo &lt;b&gt;vụ việc&lt;/b&gt;" in shown
    assert "href=\"https://baomoi" not in page  # text, not a link an officer clicks by mistake
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0
        jobs = session.scalars(select(OutboxEntry.job)).all()
    assert "media" not in jobs  # nobody downloads it, not even the media worker


def test_a_contact_card_shows_its_name_and_phone_and_nothing_is_fetched(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    page = tip_page(client, units, deliver(client, FIRST, business_card("Trần Văn Bảy",
                                                                         "0912345678")))
    shown = article(page, 1)
    assert "Danh thiếp" in shown and "Trần Văn Bảy" in shown and "0912345678" in shown
    assert "qrCodeUrl" not in shown and "/qr/abc.png" not in page
    with runtime.sessions() as session:
        kinds = session.scalars(select(Message.kind).where(Message.direction == "in")).all()
        assert kinds == ["text", "business_card"]
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_a_card_whose_description_is_not_json_still_shows_the_name(
    client: FlaskClient, units: dict[str, str]
) -> None:
    raw = event("user_send_business_card", text="Chị Hoa", msg_id="k-card-2",
                attachments=[{"type": "link", "payload": {"description": "0987 654 321"}}])
    shown = article(tip_page(client, units, deliver(client, FIRST, raw)), 1)
    assert "Danh thiếp" in shown and "Chị Hoa" in shown and "0987 654 321" in shown


def test_a_sticker_is_named_and_not_downloaded(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    raw = event("user_send_sticker", text=None, msg_id="k-sticker", attachments=[sticker()])
    shown = article(tip_page(client, units, deliver(client, FIRST, raw)), 1)
    assert "Nhãn dán" in shown
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_a_gif_is_an_attachment_the_media_worker_fetches(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    raw = event("user_send_gif", text="", msg_id="k-gif", attachments=[gif()])
    shown = article(tip_page(client, units, deliver(client, FIRST, raw)), 1)
    assert "Ảnh động" in shown
    with runtime.sessions() as session:
        assert session.scalars(select(Attachment.kind)).all() == ["gif"]


@pytest.mark.parametrize(
    ("coordinates", "shown"),
    [
        (("10.7642473", "106.6564314"), "10.7642473, 106.6564314"),
        ((10.7642473, 106.6564314), "10.7642473, 106.6564314"),
        (("10,7642473", "106,6564314"), "10.7642473, 106.6564314"),
    ],
    ids=["strings", "numbers", "decimal commas"],
)
def test_a_location_is_shown_whether_its_coordinates_are_strings_or_numbers(
    client: FlaskClient, units: dict[str, str], coordinates: tuple[object, object],
    shown: str,
) -> None:
    raw = event("user_send_location", text=None, msg_id="k-loc",
                attachments=[location(*coordinates)])
    assert shown in article(tip_page(client, units, deliver(client, FIRST, raw)), 1)


def test_a_location_without_coordinates_is_kept_and_says_so(
    client: FlaskClient, units: dict[str, str]
) -> None:
    raw = event("user_send_location", text=None, msg_id="k-loc-0",
                attachments=[{"type": "location", "payload": {"coordinates": {}}}])
    shown = article(tip_page(client, units, deliver(client, FIRST, raw)), 1)
    assert "Vị trí không kèm tọa độ" in shown


def test_a_reply_links_the_message_it_quotes(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    reply = event(text="Đúng, chính là hắn", msg_id="k-reply", quote_msg_id="k-first")
    page = tip_page(client, units, deliver(client, FIRST, reply))
    with runtime.sessions() as session:
        first = session.scalars(select(Message.public_id).order_by(Message.id)).first()
    assert f'id="m-{first}"' in article(page, 0)
    shown = article(page, 1)
    assert "trả lời tin" in shown and f'href="#m-{first}"' in shown


def test_a_reply_to_a_message_not_in_this_tip_says_so(
    client: FlaskClient, units: dict[str, str]
) -> None:
    reply = event(text="Như tôi nói hôm trước", msg_id="k-reply-2", quote_msg_id="unknown")
    shown = article(tip_page(client, units, deliver(client, FIRST, reply)), 1)
    assert "trả lời một tin không có trong tin báo này" in shown and 'href="#m-' not in shown


def test_a_link_or_a_card_is_never_read_as_a_command(
    client: FlaskClient, runtime: Runtime
) -> None:
    """A contact named "Stop", or a link captioned "STOP", is a message, not an unsubscribe."""
    deliver(client, FIRST,
            business_card("Stop", "0900000000"),
            event("user_send_link", text="STOP", msg_id="k-stop-link", attachments=[link()]))
    with runtime.sessions() as session:
        inbound = select(func.count()).select_from(Message).where(Message.direction == "in")
        assert session.scalar(inbound) == 3
        assert session.scalars(select(Tip.informant_stopped_at)).one() is None


def test_search_finds_a_cards_phone_and_a_links_address(
    client: FlaskClient, units: dict[str, str]
) -> None:
    deliver(client, FIRST, business_card("Trần Văn Bảy", "0912 345 678"),
            event("user_send_link", text="", msg_id="k-link-s",
                  attachments=[link("https://shop.example/lo-hang", "Lô hàng lậu")]))
    login(client, "canbo", units["totp:canbo"])
    for query in ("0912345678", "Tran Van Bay", "shop.example", "hang lau"):
        page = client.get("/triage/search/", query_string={"q": query}).get_data(as_text=True)
        assert 'href="/triage/tips/' in page, query
