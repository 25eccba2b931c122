"""The informant's side (issue 6): "STOP", "tình trạng", the thank-you and the 1–5 question.

Real webhook → stored event → expansion, real RQ for the outbound queue, the simulator's OA
API over HTTP, and the triage UI's own forms for the status change.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, expand, run_jobs
from tests.triage_helpers import login, post_form
from tests.zalo_events import USER, event, signed_headers
from tipline.informant import NO_TIPS, QUESTION, STOP_CONFIRMED, Command, fold, parse
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.models import (
    AuditEvent,
    Delivery,
    Direction,
    InboundEvent,
    Message,
    MessageKind,
    Notice,
    ReplyAddress,
    Tip,
    utcnow,
)
from tipline.outgoing import queue_outbound
from tipline.runtime import Runtime
from tipline.zalo.events import InboundMessage, Sender
from triage.dashboard import figures

pytestmark = pytest.mark.usefixtures("units")


_counter = iter(range(10_000))


def say(client: FlaskClient, runtime: Runtime, text: str, user: str = USER) -> None:
    """The informant writes to the commune's OA; the worker expands the event."""
    raw = event(text=text, msg_id=f"inf-{next(_counter)}", user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert expand(runtime) == 1


def send_all(runtime: Runtime) -> None:
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])


def sent_texts(sim: str) -> list[str]:
    return [str(c["text"]) for c in httpx.get(f"{sim}/_sim/messages").json() if c["status"] == "ok"]


def tips(runtime: Runtime) -> list[Tip]:
    with runtime.sessions() as session:
        rows = list(session.scalars(select(Tip).order_by(Tip.id)))
        for tip in rows:
            _ = [m.direction for m in tip.messages]
        return rows


def inbound_count(tip: Tip) -> int:
    return sum(1 for m in tip.messages if m.direction == Direction.INBOUND)


def address(runtime: Runtime) -> ReplyAddress:
    with runtime.sessions() as session:
        return session.scalars(select(ReplyAddress)).one()


def message(text: str, **extra: object) -> InboundMessage:
    return InboundMessage(
        event_name="user_send_text",
        kind="text",
        oa_id=COMMUNE_OA,
        sender=Sender(user_id=USER),
        msg_id="m",
        text=text,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("STOP", Command.STOP),
        (" stop. ", Command.STOP),
        ("XÓA", Command.STOP),
        ("xoá", Command.STOP),
        ("Xoa", Command.STOP),
        ("HỦY", Command.STOP),
        ("huỷ!", Command.STOP),
        ("tình trạng", Command.STATUS),
        ("TÌNH TRẠNG?", Command.STATUS),
        ("tinh  trang", Command.STATUS),
        ("5", Command.SCORE),
        (" 1 ", Command.SCORE),
        ("stop buôn ma túy", None),
        ("tình trạng an ninh ở hẻm 12 rất xấu", None),
        ("TT", None),
        ("0", None),
        ("6", None),
        ("55", None),
        ("đ", None),
    ],
)
def test_commands_are_whole_messages_with_or_without_diacritics(
    text: str, command: Command | None
) -> None:
    parsed = parse(message(text))
    assert (parsed.command if parsed else None) == command
    assert fold("Đường Tình Trạng") == "duong tinh trang"


def test_a_command_with_a_location_or_a_picture_is_a_message() -> None:
    assert parse(message("STOP", location=(9.0, 105.0))) is None
    assert parse(message("xóa", attachments=[{"type": "image", "payload": {}}])) is None


def test_stop_destroys_the_reply_address_and_is_not_a_tip_message(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    say(client, runtime, "Có người buôn bán ma túy ở hẻm 12")
    [tip] = tips(runtime)
    assert dispatch_tip(tip.public_id) == "dispatched"  # queues the receipt, not yet sent
    say(client, runtime, "XÓA")
    gone = address(runtime)
    assert gone.sealed_address is None and gone.destroyed_at is not None
    [tip] = tips(runtime)
    assert inbound_count(tip) == 1  # the command is nowhere in the tip
    with runtime.sessions() as session:
        last_event = session.scalars(select(InboundEvent).order_by(InboundEvent.id.desc())).first()
        assert last_event is not None
        assert last_event.sealed_event is None and last_event.tip_public_id is None
        [stop] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "informant_stop")
        ).all()
        assert stop.object_id is None and stop.actor_id is None
        assert stop.detail_json in (None, "", "{}")
        dumped = json.dumps(
            {c.name: str(getattr(stop, c.key)) for c in AuditEvent.__table__.columns},
            ensure_ascii=False,
        )
        assert USER not in dumped and "XÓA" not in dumped and tip.public_id not in dumped
    # An officer's later reply finds no address.
    with runtime.sessions() as session, session.begin():
        tip_row = session.scalars(select(Tip)).one()
        later = queue_outbound(session, tip_row, "Còn đó không?", transit=runtime.transit.public())
        later_id = later.public_id
    send_all(runtime)
    with runtime.sessions() as session:
        outbound = session.scalars(
            select(Message).where(Message.direction == Direction.OUTBOUND)
        ).all()
        assert {m.public_id: m.delivery for m in outbound}[later_id] == Delivery.NO_ADDRESS
        # The receipt queued before STOP goes nowhere; the one answer to STOP is delivered.
        by_kind = {m.kind: m.delivery for m in outbound if m.public_id != later_id}
        assert by_kind == {
            MessageKind.TEXT: Delivery.NO_ADDRESS,
            MessageKind.STOP_CONFIRMATION: Delivery.SENT,
        }
        assert all(m.sealed_for_relay is None for m in outbound)
    assert sent_texts(sim) == [STOP_CONFIRMED]
    # Writing again makes the informant reachable again, on a new tip: the old one stays cut off.
    say(client, runtime, "Tôi muốn báo thêm")
    back = address(runtime)
    assert back.sealed_address is not None and back.destroyed_at is None
    old, new = sorted(tips(runtime), key=lambda t: t.id)
    assert old.informant_stopped_at is not None and old.reply_address_id is None
    assert new.reply_address_id == back.id


def test_status_lists_the_open_tips_with_receipt_codes(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    say(client, runtime, "Có người buôn bán ma túy ở hẻm 12")
    with runtime.sessions() as session, session.begin():
        first = session.scalars(select(Tip)).one()
        first.status = "verifying"
        first.last_inbound_at = utcnow() - timedelta(days=3)  # past the follow-up window
    say(client, runtime, "Một chuyện khác: đánh bạc ở chợ")
    say(client, runtime, "Có người trộm xe, tin này sai")
    with runtime.sessions() as session, session.begin():
        _, closed = session.scalars(select(Tip).order_by(Tip.id)).all()
        closed.status = "spam"
        closed.last_inbound_at = utcnow() - timedelta(days=3)
    say(client, runtime, "Báo mới: có người mang hung khí")
    before = {t.public_id: inbound_count(t) for t in tips(runtime)}
    assert len(before) == 3
    say(client, runtime, "Tình trạng")
    after = tips(runtime)
    assert {t.public_id: inbound_count(t) for t in after} == before
    send_all(runtime)
    [reply] = sent_texts(sim)
    verifying, spam, new = after
    assert f"{verifying.receipt_code}: đang xác minh" in reply
    assert f"{new.receipt_code}: mới" in reply
    assert spam.receipt_code not in reply
    # The reply is an outbound message of the informant's latest open tip.
    with runtime.sessions() as session:
        [out] = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND))
        assert out.tip.public_id == new.public_id and out.delivery == Delivery.SENT


def test_status_without_any_tip_is_answered_and_never_a_tip(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    """Issue 18: "tình trạng" from someone with no tip once became a junk tip with a receipt
    code. It is answered by a notice, sent and then deleted; no tip, no address is kept."""
    say(client, runtime, "tinh trang")
    assert tips(runtime) == []
    send_all(runtime)
    [reply] = sent_texts(sim)
    assert reply == NO_TIPS and "113" in reply
    with runtime.sessions() as session:
        assert session.scalars(select(Notice)).all() == []
        assert session.scalars(select(ReplyAddress)).all() == []
        assert session.scalars(select(Message)).all() == []
    # A real report afterwards is a tip as ever.
    say(client, runtime, "Có người bán ma túy ở hẻm 12")
    assert len(tips(runtime)) == 1


def close(client: FlaskClient, units: dict[str, str], tip_id: str, status: str) -> None:
    """The officer of the tip's commune sets its status through the tip page's form."""
    if client.get("/triage/").status_code != 200:
        login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    assert post_form(client, url, f"{url}/status", {"value": status}).status_code == 302


def test_closure_thanks_asks_and_a_score_is_recorded(
    client: FlaskClient, runtime: Runtime, sim: str, units: dict[str, str]
) -> None:
    say(client, runtime, "Có người buôn bán ma túy ở hẻm 12")
    [tip] = tips(runtime)
    assert dispatch_tip(tip.public_id) == "dispatched"
    close(client, units, tip.public_id, "resolved")
    send_all(runtime)
    receipt, thanks = sent_texts(sim)
    assert tip.receipt_code in receipt
    assert tip.receipt_code in thanks and QUESTION in thanks
    [asked] = tips(runtime)
    assert asked.satisfaction_asked_at is not None and asked.satisfaction is None
    # Closing again (another closed status) asks nothing more.
    close(client, units, tip.public_id, "unfounded")
    send_all(runtime)
    assert len(sent_texts(sim)) == 2

    say(client, runtime, "5")
    [scored] = tips(runtime)
    assert scored.satisfaction == 5 and inbound_count(scored) == 1
    send_all(runtime)
    assert "Cảm ơn bạn đã đánh giá" in sent_texts(sim)[-1]
    # A second digit is no longer an answer: the question was answered.
    say(client, runtime, "4")
    scored, new = tips(runtime)
    assert scored.satisfaction == 5 and inbound_count(new) == 1

    # The commander's dashboard shows it.
    with runtime.sessions() as session:
        data = figures(session, [scored.unit_id or 0], utcnow())
    assert data.satisfaction[scored.unit_id or 0] == (1, 1, 5.0)
    commander = client.application.test_client()
    login(commander, "chihuy", units["totp:chihuy"])
    page = commander.get("/triage/dashboard/").get_data(as_text=True)
    assert 'id="satisfaction"' in page and "5.0" in page


@pytest.mark.parametrize("status", ["spam", "duplicate", "verifying"])
def test_no_thanks_for_spam_duplicates_or_open_statuses(
    client: FlaskClient, runtime: Runtime, sim: str, units: dict[str, str], status: str
) -> None:
    say(client, runtime, "Có người buôn bán ma túy ở hẻm 12")
    [tip] = tips(runtime)
    assert dispatch_tip(tip.public_id) == "dispatched"
    close(client, units, tip.public_id, status)
    send_all(runtime)
    assert len(sent_texts(sim)) == 1  # the receipt only
    assert tips(runtime)[0].satisfaction_asked_at is None


def test_no_thanks_after_stop(
    client: FlaskClient, runtime: Runtime, sim: str, units: dict[str, str]
) -> None:
    say(client, runtime, "Có người buôn bán ma túy ở hẻm 12")
    [tip] = tips(runtime)
    assert dispatch_tip(tip.public_id) == "dispatched"
    say(client, runtime, "STOP")
    close(client, units, tip.public_id, "resolved")
    with runtime.sessions() as session:
        assert session.scalars(select(Tip)).one().satisfaction_asked_at is None
        outbound = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND))
        # The receipt (it will end NO_ADDRESS) and the answer to STOP; no thanks.
        assert sorted(m.kind for m in outbound) == [
            MessageKind.STOP_CONFIRMATION,
            MessageKind.TEXT,
        ]


def test_a_digit_without_a_pending_question_is_a_tip_message(
    client: FlaskClient, runtime: Runtime
) -> None:
    say(client, runtime, "5")
    [tip] = tips(runtime)
    assert inbound_count(tip) == 1 and tip.satisfaction is None
    # Nor does a question asked more than 7 days ago make "5" an answer.
    with runtime.sessions() as session, session.begin():
        row = session.scalars(select(Tip)).one()
        row.status = "resolved"
        row.satisfaction_asked_at = utcnow() - timedelta(days=8)
    say(client, runtime, "5")
    old, new = tips(runtime)
    assert old.satisfaction is None and inbound_count(new) == 1


def test_a_notice_whose_job_was_lost_is_purged_after_a_day(
    client: FlaskClient, runtime: Runtime
) -> None:
    from tipline.retention import NOTICE_KEPT, purge_notices

    say(client, runtime, "tình trạng")  # queued, never sent: no worker ran
    with runtime.sessions() as session, session.begin():
        assert purge_notices(session, utcnow()) == 0
        assert purge_notices(session, utcnow() + NOTICE_KEPT + timedelta(minutes=1)) == 1
        assert session.scalars(select(Notice)).all() == []
