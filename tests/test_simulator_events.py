"""The simulator models what real Zalo does with events and windows, and `tipline zalo send`
posts every event shape: so tests exercise Zalo, not a friendlier fake.

- Windows: a consultation message is free for 48 hours after the user's last interaction,
  charged to the OA's Zalo Cloud Account until 7 days (-320 unlinked, -321 empty), refused
  after (-230). The simulator learns interactions from the events the sender posts.
- Configuration: an OA can be made misconfigured; every send then gets Zalo's code.
- The sender and the CLI: links, contact cards, stickers, GIFs, audio, video, locations with
  string coordinates, quotes, the web chat, an OA admin's console reply, a withdrawal, and
  bare events.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import APP_ID, COMMUNE_OA, OA_SECRET, expand, run_jobs
from tests.test_simulator import USER_ID, send, text_body
from tipline.cli.zalo import zalo
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.models import (
    Delivery,
    Direction,
    Message,
    QuarantinedEvent,
    ReplyAddress,
    SendProblem,
    Tip,
)
from tipline.runtime import Runtime
from tipline.zalo.sender import (
    UploadedMedia,
    build_bare_event,
    build_event,
    build_oa_reply,
    build_withdraw,
    record_interaction,
)
from tipline.zalo.simulator import ERROR_MESSAGES, issue_tokens

HOUR_MS = 3600 * 1000
CONFIG_CODES = [-209, -212, -219, -221, -223, -224, -240, -242]


def now_ms() -> int:
    return int(time.time() * 1000)


def interacted(client: FlaskClient, hours_ago: float, user: str = USER_ID) -> None:
    response = client.post("/_sim/interactions", json={
        "oa_id": COMMUNE_OA, "user_id": user, "at": now_ms() - int(hours_ago * HOUR_MS),
    })
    assert response.status_code == 200, response.get_json()


def oa_state(client: FlaskClient, **state: Any) -> Any:
    response = client.post(f"/_sim/oa/{COMMUNE_OA}", json=state)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def token(config: Any) -> str:
    return issue_tokens(config.data_dir, COMMUNE_OA)[0]


# --- windows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours_ago", "account", "error"),
    [
        (1, "unlinked", 0),  # free: the Cloud Account does not matter
        (47.9, "empty", 0),
        (49, "funded", 0),  # paid, and paid for
        (49, "unlinked", -320),
        (72, "empty", -321),
        (7 * 24 - 1, "unlinked", -320),
        (7 * 24 + 1, "funded", -230),  # closed, whatever the account
    ],
)
def test_the_simulator_answers_each_window_as_zalo(
    client: FlaskClient, token: str, hours_ago: float, account: str, error: int
) -> None:
    interacted(client, hours_ago)
    oa_state(client, cloud_account=account)
    answer = send(client, token, text_body())
    assert answer["error"] == error and answer["message"]
    if error:
        assert "data" not in answer


def test_a_new_interaction_reopens_the_free_window(client: FlaskClient, token: str) -> None:
    interacted(client, 100)
    oa_state(client, cloud_account="unlinked")
    assert send(client, token, text_body())["error"] == -320
    interacted(client, 0)
    assert send(client, token, text_body())["error"] == 0
    interacted(client, 100)  # an older report does not move the last interaction back
    assert send(client, token, text_body())["error"] == 0


def test_a_user_the_simulator_never_heard_from_is_in_the_free_window(
    client: FlaskClient, token: str
) -> None:
    oa_state(client, cloud_account="unlinked")
    assert send(client, token, text_body(user_id="1111111111111111111"))["error"] == 0


def test_anonymous_web_chat_windows_count_per_conversation(
    client: FlaskClient, token: str
) -> None:
    response = client.post("/_sim/interactions", json={
        "oa_id": COMMUNE_OA, "conversation_id": "c-9", "at": now_ms() - 8 * 24 * HOUR_MS,
    })
    assert response.status_code == 200
    body = {"recipient": {"conversation_id": "c-9", "anonymous_id": "a-9"},
            "message": {"text": "xin chào"}}
    assert send(client, token, body, path="/_sim/v2.0/oa/message")["error"] == -230


@pytest.mark.parametrize("code", CONFIG_CODES)
def test_a_misconfigured_oa_answers_every_send_with_its_code(
    client: FlaskClient, token: str, code: int
) -> None:
    assert oa_state(client, error=code)["error"] == code
    for _ in range(2):
        answer = send(client, token, text_body())
        assert answer["error"] == code and answer["message"] == ERROR_MESSAGES[code]
    assert oa_state(client, error=None)["error"] is None
    assert send(client, token, text_body())["error"] == 0


@pytest.mark.parametrize(
    "body",
    [{"cloud_account": "rich"}, {"error": -1}, {"error": 0}, {"error": "x"}],
)
def test_bad_oa_states_are_refused(client: FlaskClient, body: dict[str, Any]) -> None:
    assert client.post(f"/_sim/oa/{COMMUNE_OA}", json=body).status_code == 400


@pytest.mark.parametrize(
    "body",
    [{}, {"oa_id": COMMUNE_OA}, {"oa_id": COMMUNE_OA, "user_id": "1", "conversation_id": "c"},
     {"oa_id": COMMUNE_OA, "user_id": "1", "at": "yesterday"}],
)
def test_bad_interactions_are_refused(client: FlaskClient, body: dict[str, Any]) -> None:
    assert client.post("/_sim/interactions", json=body).status_code == 400


def test_every_code_tipline_names_has_zalos_words() -> None:
    for code in [*CONFIG_CODES, -320, -321, -230, -232, -213, -227, -244, -216, -220, -32]:
        assert ERROR_MESSAGES.get(code), code


# --- the sender's event shapes --------------------------------------------------------------

MEDIA = UploadedMedia(url="http://x/_sim/media/1", name="a.amr", size=3, checksum="c",
                      type="amr")


def shape(**kwargs: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(build_event(COMMUNE_OA, USER_ID, app_id=APP_ID, **kwargs))
    return event


def test_build_event_makes_every_kind_zalo_sends() -> None:
    linked = shape(link=("https://a.example/x", "Bài báo"))
    assert linked["event_name"] == "user_send_link" and linked["message"]["text"] == ""
    assert linked["message"]["attachments"][0] == {
        "type": "link",
        "payload": {"url": "https://a.example/x", "description": "Bài báo", "thumbnail": ""},
    }
    card = shape(card=("Trần Văn Bảy", "0912345678"))
    assert card["event_name"] == "user_send_business_card"
    assert card["message"]["text"] == "Trần Văn Bảy"
    [attachment] = card["message"]["attachments"]
    assert attachment["type"] == "link"
    assert json.loads(attachment["payload"]["description"])["phone"] == "0912345678"
    sticker = shape(sticker="abc")
    assert sticker["event_name"] == "user_send_sticker"
    assert sticker["message"]["attachments"][0]["payload"]["id"] == "abc"
    assert shape(gif=MEDIA)["message"]["attachments"][0]["type"] == "gif"
    assert shape(audio=MEDIA)["message"]["attachments"][0] == {
        "type": "audio", "payload": {"url": MEDIA.url}}
    assert shape(video=MEDIA)["event_name"] == "user_send_video"
    quoted = shape(text="Đúng", quote_msg_id="m-1", msg_id="m-2")
    assert quoted["message"] == {"text": "Đúng", "msg_id": "m-2", "quote_msg_id": "m-1"}
    located = shape(location=(10.7642473, 106.6564314))
    assert located["message"]["attachments"][0]["payload"]["coordinates"] == {
        "latitude": "10.7642473", "longitude": "106.6564314"}
    anonymous = shape(text="xin chào", anonymous="conv-1")
    assert anonymous["event_name"] == "anonymous_send_text"
    assert anonymous["message"]["conversation_id"] == "conv-1"
    assert "user_id_by_app" not in anonymous
    with pytest.raises(ValueError, match="web chat"):
        shape(link="https://a.example", anonymous="conv-1")
    with pytest.raises(ValueError, match="exactly one"):
        shape(text="a", sticker="b")


def test_the_other_builders() -> None:
    reply = json.loads(build_oa_reply(COMMUNE_OA, USER_ID, "Cảm ơn", app_id=APP_ID))
    assert reply["event_name"] == "oa_send_text" and reply["sender"]["id"] == COMMUNE_OA
    assert reply["sender"]["admin_id"] and reply["recipient"] == {"id": USER_ID}
    echo = json.loads(build_oa_reply(COMMUNE_OA, USER_ID, "x", admin_id=None, app_id=APP_ID))
    assert "admin_id" not in echo["sender"]
    withdrawn = json.loads(build_withdraw(COMMUNE_OA, USER_ID, app_id=APP_ID))
    assert withdrawn["event_name"] == "user_withdraw" and withdrawn["oa_id"] == COMMUNE_OA
    assert withdrawn["follower"] == {"id": USER_ID}
    bare = json.loads(build_bare_event("something_new", app_id=APP_ID))
    assert set(bare) == {"app_id", "event_name", "timestamp"}


def test_record_interaction_reports_only_what_zalo_counts(sim: str) -> None:
    assert record_interaction(sim, build_event(COMMUNE_OA, USER_ID, text="x"))
    assert record_interaction(sim, build_event(COMMUNE_OA, "v", text="x", anonymous="c"))
    assert not record_interaction(sim, build_withdraw(COMMUNE_OA, USER_ID))
    assert not record_interaction(sim, build_oa_reply(COMMUNE_OA, USER_ID, "x"))
    assert not record_interaction("http://127.0.0.1:9", build_event(COMMUNE_OA, USER_ID,
                                                                    text="x"))


# --- `tipline zalo send`, end to end --------------------------------------------------------


def cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(
        zalo, ["send", "--to", url, "--oa", COMMUNE_OA, "--user", USER_ID, *args],
        env={"ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": OA_SECRET},
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200")
    return result.output


@pytest.fixture
def live(units: dict[str, str], sim: str) -> str:
    return sim


def inbound_kinds(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return list(session.scalars(
            select(Message.kind).where(Message.direction == Direction.INBOUND).order_by(Message.id)
        ))


def test_the_cli_sends_every_kind_and_each_reaches_the_tip(
    live: str, runtime: Runtime, tmp_path: Path
) -> None:
    gif = tmp_path / "g.gif"
    gif.write_bytes(b"GIF89a fake")
    voice = tmp_path / "ghi-am.amr"
    voice.write_bytes(b"#!AMR fake")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake")
    cli(live, "--text", "Có người buôn bán ma túy ở hẻm 12", "--msg-id", "cli-1")
    cli(live, "--text", "Chính hắn", "--quote", "cli-1")
    cli(live, "--link", "https://baomoi.example/x", "--description", "Bài báo")
    cli(live, "--card", "Trần Văn Bảy,0912345678")
    cli(live, "--sticker")
    cli(live, "--sticker", "abc123")
    cli(live, "--gif", str(gif))
    cli(live, "--audio", str(voice))
    cli(live, "--video", str(clip))
    cli(live, "--location", "10.7642473,106.6564314")
    assert expand(runtime) == 10
    assert inbound_kinds(runtime) == [
        "text", "text", "link", "business_card", "sticker", "sticker", "gif", "audio",
        "video", "location",
    ]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tip)) == 1


def test_the_cli_speaks_for_the_web_chat(live: str, runtime: Runtime) -> None:
    cli(live, "--anonymous", "conv-7", "--text", "Có đánh bạc ở quán cà phê")
    expand(runtime)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tip)) == 1


def test_the_cli_plays_an_oa_admin_and_a_withdrawal(live: str, runtime: Runtime) -> None:
    cli(live, "--text", "Có người buôn bán ma túy ở hẻm 12")
    cli(live, "--admin-reply", "Bạn cho biết thêm địa chỉ?")
    expand(runtime)
    with runtime.sessions() as session:
        console = session.scalars(
            select(Message).where(Message.direction == Direction.OUTBOUND)
        ).one()
        assert console.delivery == Delivery.SENT and console.zalo_message_id
    cli(live, "--withdraw")
    expand(runtime)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReplyAddress)) == 0
        assert session.scalars(select(Tip.informant_withdrawn_at)).one() is not None


def test_the_cli_sends_bare_events(live: str, runtime: Runtime) -> None:
    assert '"ignored":true' in cli(live, "--event", "something_new_from_zalo").replace(" ", "")
    assert '"quarantined":true' in cli(live, "--event", "user_send_text").replace(" ", "")
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(QuarantinedEvent)) == 1


def test_the_cli_needs_exactly_one_content(live: str) -> None:
    result = CliRunner().invoke(
        zalo, ["send", "--to", live, "--oa", COMMUNE_OA, "--user", USER_ID, "--withdraw",
               "--text", "x"],
        env={"ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": OA_SECRET},
    )
    assert result.exit_code == 2 and "exactly one" in result.output
    result = CliRunner().invoke(
        zalo, ["send", "--to", live, "--oa", COMMUNE_OA, "--user", USER_ID, "--card", "x"],
        env={"ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": OA_SECRET},
    )
    assert result.exit_code == 2


def test_an_unfunded_oa_fails_an_answer_in_the_paid_window_end_to_end(
    live: str, runtime: Runtime
) -> None:
    """The informant wrote 3 days ago (the CLI tells the simulator so); the OA's Zalo Cloud
    Account is not linked: the acknowledgement is refused -320, and the officer sees why."""
    three_days_ago = now_ms() - 72 * HOUR_MS
    cli(live, "--text", "Có người buôn bán ma túy ở hẻm 12", "--timestamp", str(three_days_ago))
    httpx.post(f"{live}/_sim/oa/{COMMUNE_OA}", json={"cloud_account": "unlinked"})
    expand(runtime)
    with runtime.sessions() as session:
        tip_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(tip_id) == "dispatched"
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])
    with runtime.sessions() as session:
        ack = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    assert ack.delivery == Delivery.FAILED and ack.delivery_problem == SendProblem.UNFUNDED
    [call] = httpx.get(f"{live}/_sim/messages").json()
    assert call["error"] == -320
