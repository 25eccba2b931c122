"""Every event shape of research/zalo.md §1 and §8 (tests/zalo_events.py SHAPES), posted through
the real webhook and expanded by the worker: each gets 200 and ends where it should.

- "message": a tip message of its kind;
- "console": an OA admin's reply typed on Zalo, an outbound message officers see;
- "ignored": nothing stored at all;
- "quarantined": kept in quarantine, nothing else stored;
- "withdrawn": the informant's address erased, their tips cut off.
"""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import expand
from tests.hostile.snapshot import assert_unchanged, snapshot
from tests.zalo_events import SHAPES, Shape, event, signed_headers
from tipline.models import (
    Delivery,
    Direction,
    Message,
    QuarantinedEvent,
    ReplyAddress,
    Tip,
)
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

SEED = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id="seed")


def post(client: FlaskClient, raw: bytes) -> dict[str, object]:
    response = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert isinstance(answer, dict) and answer.get("ok") is True
    return answer


def messages(runtime: Runtime, direction: str) -> list[Message]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Message).where(Message.direction == direction).order_by(Message.id)
            )
        )


def test_the_fixture_covers_every_documented_event_name() -> None:
    names = {json.loads(shape.raw).get("event_name") for shape in SHAPES.values()}
    documented = {
        "user_send_text", "user_send_image", "user_send_link", "user_send_audio",
        "user_send_video", "user_send_sticker", "user_send_location", "user_send_business_card",
        "user_send_file", "user_send_gif", "oa_send_text", "oa_send_image", "oa_send_gif",
        "oa_send_list", "oa_send_file", "oa_send_sticker", "follow", "unfollow",
        "user_submit_info", "user_received_message", "user_seen_message",
        "user_reacted_message", "oa_reacted_message", "user_click_chatnow", "add_user_to_tag",
        "remove_user_from_tag", "remove_tag", "update_user_info", "user_withdraw",
        "anonymous_send_text", "anonymous_send_image", "anonymous_send_file",
        "anonymous_send_sticker",
    }
    assert documented <= names, sorted(documented - names)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_shape_gets_200_and_ends_where_it_should(
    client: FlaskClient, runtime: Runtime, shape: Shape
) -> None:
    post(client, SEED)  # the informant's tip, for the shapes that concern it
    assert expand(runtime) == 1
    inbound = len(messages(runtime, Direction.INBOUND))
    outbound = len(messages(runtime, Direction.OUTBOUND))
    before = snapshot(runtime)
    before_but_quarantine = snapshot(runtime, skip=("quarantined_events",))

    answer = post(client, shape.raw)
    expand(runtime)

    match shape.ends:
        case "message":
            assert answer == {"ok": True}
            new = messages(runtime, Direction.INBOUND)[inbound:]
            assert [m.kind for m in new] == [shape.kind]
        case "console":
            assert answer == {"ok": True}
            [reply] = messages(runtime, Direction.OUTBOUND)[outbound:]
            assert reply.kind == shape.kind and reply.delivery == Delivery.SENT
            assert reply.zalo_message_id and reply.author_id is None
        case "ignored":
            assert answer == {"ok": True, "ignored": True}
            assert_unchanged(runtime, before)
        case "quarantined":
            assert answer == {"ok": True, "quarantined": True}
            assert_unchanged(runtime, before_but_quarantine, skip=("quarantined_events",))
            with runtime.sessions() as session:
                assert session.scalar(select(func.count()).select_from(QuarantinedEvent)) == 1
        case "withdrawn":
            assert answer == {"ok": True}
            with runtime.sessions() as session:
                assert session.scalar(select(func.count()).select_from(ReplyAddress)) == 0
                tip = session.scalars(select(Tip)).one()
                assert tip.informant_withdrawn_at is not None and tip.reply_address_id is None
        case other:
            raise AssertionError(f"unknown ending {other!r}")


def test_all_shapes_one_after_another_block_nothing(
    client: FlaskClient, runtime: Runtime
) -> None:
    """As Zalo would deliver them to one install: every answer 200, the queue drained."""
    post(client, SEED)
    for shape in SHAPES.values():
        if shape.ends != "withdrawn":
            post(client, shape.raw)
    post(client, SHAPES["user_withdraw"].raw)
    expand(runtime)
    expected_messages = sum(1 for s in SHAPES.values() if s.ends == "message")
    expected_console = sum(1 for s in SHAPES.values() if s.ends == "console")
    with runtime.sessions() as session:
        inbound = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
        assert inbound == 1 + expected_messages
        console = session.scalar(
            select(func.count()).select_from(Message).where(Message.dedup_key.is_not(None),
                                                            Message.direction == "out")
        )
        assert console == expected_console
        assert session.scalar(select(func.count()).select_from(QuarantinedEvent)) == sum(
            1 for s in SHAPES.values() if s.ends == "quarantined"
        )
        # The withdrawal came last: every tip of that informant is cut off.
        user_tips = session.scalars(select(Tip).where(Tip.informant_withdrawn_at.is_not(None)))
        assert list(user_tips)
