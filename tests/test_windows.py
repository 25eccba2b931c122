"""Zalo's reply windows as Zalo counts them, Zalo's ids of our messages, and why a send failed
told in words.

Free until 48 hours after the informant's last message, paid (the OA's Zalo Cloud Account is
charged) until 7 days, closed after (research/zalo.md §2.4, §8.2). Funding and configuration
errors reach the officer on the message and the admin on /admin/zalo-events, each as a class
with a Vietnamese label, not an anonymous "failed".
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.conftest import OFFICER_PASSWORD, expand, run_jobs
from tests.triage_helpers import login, post_form
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.models import Delivery, Direction, Message, ReplyAddress, SendProblem, Tip, utcnow
from tipline.runtime import Runtime
from tipline.time_rules import ZALO_FREE_WINDOW, ZALO_REPLY_WINDOW, ReplyWindow, reply_window
from tipline.web.i18n import when
from tipline.zalo.client import problem_for

pytestmark = pytest.mark.usefixtures("units")


def a_tip(client: FlaskClient, runtime: Runtime, msg_id: str = "w-1") -> str:
    raw = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id=msg_id)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id).order_by(Tip.id.desc())).first()
    assert public_id is not None and dispatch_tip(public_id) == "dispatched"
    return public_id


def send_all(runtime: Runtime) -> None:
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])


def last_wrote(runtime: Runtime, ago: timedelta) -> None:
    """The informant's last message was ``ago``."""
    at = utcnow() - ago
    with runtime.sessions() as session, session.begin():
        session.execute(update(Tip).values(last_inbound_at=at))
        session.execute(update(ReplyAddress).values(last_inbound_at=at))


def page(client: FlaskClient, units: dict[str, str], tip_id: str) -> str:
    login(client, "canbo", units["totp:canbo"])
    response = client.get(f"/triage/tips/{tip_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def window_line(html: str) -> str:
    found = re.search(r'<p[^>]*id="reply-window"[^>]*>(.*?)</p>', html, re.S)
    assert found, "no reply window on the page"
    return found.group(1)


# --- the windows --------------------------------------------------------------------------


def test_reply_window_is_free_then_paid_then_closed() -> None:
    now = utcnow()
    assert ZALO_FREE_WINDOW == timedelta(hours=48) and ZALO_REPLY_WINDOW == timedelta(days=7)
    last = now - timedelta(hours=47)
    assert reply_window(last, now) == (ReplyWindow.FREE, last + ZALO_FREE_WINDOW)
    last = now - timedelta(hours=49)
    assert reply_window(last, now) == (ReplyWindow.PAID, last + ZALO_REPLY_WINDOW)
    last = now - timedelta(days=7, seconds=1)
    assert reply_window(last, now) == (ReplyWindow.CLOSED, None)


@pytest.mark.parametrize(
    ("ago", "shown", "until"),
    [
        (timedelta(hours=1), "Miễn phí đến", ZALO_FREE_WINDOW),
        (timedelta(days=3), "Có tính phí đến", ZALO_REPLY_WINDOW),
        (timedelta(days=8), "Đã đóng", None),
    ],
    ids=["free", "paid", "closed"],
)
def test_the_tip_page_says_which_window_the_reply_is_in(
    client: FlaskClient, runtime: Runtime, units: dict[str, str],
    ago: timedelta, shown: str, until: timedelta | None,
) -> None:
    tip_id = a_tip(client, runtime)
    last_wrote(runtime, ago)
    with runtime.sessions() as session:
        last = session.scalars(select(Tip.last_inbound_at)).one()
    html = page(client, units, tip_id)
    line = window_line(html)
    assert shown in line
    if until is not None:
        assert when(last + until) in line
        assert 'id="form-reply"' in html
    else:
        assert 'id="form-reply"' not in html


def test_the_window_counts_from_the_informants_last_message_in_any_tip(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """Zalo counts per user and OA: writing in a newer tip reopens the older one's window."""
    first = a_tip(client, runtime, "w-old")
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(Tip).where(Tip.public_id == first)
            .values(last_inbound_at=utcnow() - timedelta(days=8), status="verifying")
        )
        session.execute(update(ReplyAddress).values(last_inbound_at=utcnow()))
    assert "Miễn phí đến" in window_line(page(client, units, first))


# --- Zalo's id of each message it took -------------------------------------------------------


def test_zalos_message_id_of_each_send_is_stored_as_is(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    a_tip(client, runtime)
    send_all(runtime)  # the acknowledgement
    [call] = httpx.get(f"{sim}/_sim/messages").json()
    with runtime.sessions() as session:
        sent = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    assert sent.delivery == Delivery.SENT and sent.zalo_message_id == call["message_id"]


def test_an_informant_quoting_our_message_links_it(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    tip_id = a_tip(client, runtime)
    send_all(runtime)
    [call] = httpx.get(f"{sim}/_sim/messages").json()
    raw = event(text="Vâng, mã đó", msg_id="w-quote", quote_msg_id=call["message_id"])
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        ours = session.scalars(
            select(Message.public_id).where(Message.direction == Direction.OUTBOUND)
        ).one()
    assert f'href="#m-{ours}"' in page(client, units, tip_id)


# --- why a send failed, in words ------------------------------------------------------------

PROBLEMS = {
    -320: SendProblem.UNFUNDED,
    -321: SendProblem.UNFUNDED,
    -221: SendProblem.OA_NOT_ELIGIBLE,
    -224: SendProblem.OA_NOT_ELIGIBLE,
    -209: SendProblem.APP_NOT_PERMITTED,
    -212: SendProblem.APP_NOT_PERMITTED,
    -219: SendProblem.APP_NOT_PERMITTED,
    -223: SendProblem.APP_NOT_PERMITTED,
    -240: SendProblem.API_RETIRED,
    -242: SendProblem.APP_PROOF,
    -230: SendProblem.WINDOW_CLOSED,
    -232: SendProblem.WINDOW_CLOSED,
    -213: SendProblem.UNREACHABLE,
    -227: SendProblem.UNREACHABLE,
    -244: SendProblem.UNREACHABLE,
    -201: SendProblem.REJECTED,
}


def test_every_funding_and_configuration_code_has_its_class() -> None:
    for code, problem in PROBLEMS.items():
        assert problem_for(code) is problem, code
    assert problem_for(0) is None


LABELS = {
    SendProblem.UNFUNDED: "Zalo Cloud Account",
    SendProblem.OA_NOT_ELIGIBLE: "gói dịch vụ",
    SendProblem.APP_NOT_PERMITTED: "chưa được cấp quyền",
    SendProblem.API_RETIRED: "ngừng",
    SendProblem.APP_PROOF: "appsecret_proof",
}


@pytest.mark.parametrize("code", [-320, -321, -209, -212, -219, -221, -223, -224, -240, -242])
def test_a_funding_or_configuration_error_is_named_on_the_message(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str, code: int
) -> None:
    tip_id = a_tip(client, runtime)
    httpx.post(f"{sim}/_sim/faults", json={"errors": [code]}).raise_for_status()
    send_all(runtime)
    with runtime.sessions() as session:
        sent = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).one()
    assert sent.delivery == Delivery.FAILED and sent.delivery_problem == PROBLEMS[code]
    assert sent.delivery_error is not None and str(code) in sent.delivery_error
    html = page(client, units, tip_id)
    problem = re.search(r'<span class="problem[^"]*">(.*?)</span>', html, re.S)
    assert problem is not None and LABELS[PROBLEMS[code]] in problem.group(1)


@pytest.fixture
def admin(client: FlaskClient, runtime: Runtime) -> FlaskClient:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        account = add_officer(
            session, username="quantri", display_name="Quản trị", role="admin", unit_code=None,
            password=OFFICER_PASSWORD, cost=runtime.config.kdf_cost, totp_confirmed=True,
        )
    assert login(client, "quantri", account.totp_secret).status_code == 302
    return client


def test_admins_see_each_oas_sending_problems_in_words(
    admin: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    a_tip(admin, runtime)
    httpx.post(f"{sim}/_sim/faults", json={"errors": [-321]}).raise_for_status()
    send_all(runtime)
    html = admin.get("/admin/zalo-events").get_data(as_text=True)
    section = html.split('id="send-problems"', 1)[1]
    assert units["commune_oa"] in section
    assert "Zalo Cloud Account" in section and "-321" in section
    assert "Có người buôn" not in html  # no content, ever


def test_an_officers_reply_in_the_paid_window_is_sent(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    tip_id = a_tip(client, runtime)
    send_all(runtime)
    last_wrote(runtime, timedelta(days=3))
    login(client, "canbo", units["totp:canbo"])
    post_form(client, f"/triage/tips/{tip_id}", f"/triage/tips/{tip_id}/reply",
              {"text": "Bạn có thể cho biết thêm?"})
    send_all(runtime)
    with runtime.sessions() as session:
        reply = session.scalars(select(Message).where(Message.author_id.is_not(None))).one()
    assert reply.delivery == Delivery.SENT
