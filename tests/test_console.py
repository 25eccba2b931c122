"""The duty officer's console (issue 18) through the app's routes: the live inbox's poll, unread
markers, the notification list, the one-panel triage, confirmations, the hand-over page,
honest records (one "tip opened" per visit, the SLA per unit) and the PDF export."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select

from tests.conftest import expand
from tests.triage_helpers import csrf_from, login, post_form, totp_code
from tests.zalo_events import event, signed_headers
from tipline.audit import actions
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import AuditEvent, CannedReply, Notification, Officer, Tip, Unit
from tipline.runtime import Runtime

TEXT = "Có người tàng trữ ma túy ở nhà số 5 hẻm 12, xe biển số 69B1-234.56"


def send_tip(client: FlaskClient, runtime: Runtime, text: str = TEXT, n: int = 1) -> str:
    raw = event(text=text, msg_id=f"console-{n}", user=f"55500011122233{n:05d}")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id).order_by(Tip.id.desc())).first()
    assert public_id is not None and dispatch_tip(public_id) == "dispatched"
    return public_id


@pytest.fixture
def tip_id(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> str:
    return send_tip(client, runtime)


def the_tip(runtime: Runtime, public_id: str) -> Tip:
    with runtime.sessions() as session:
        return session.scalars(select(Tip).where(Tip.public_id == public_id)).one()


def events(runtime: Runtime, public_id: str, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.object_id == public_id, AuditEvent.action == action)
                .order_by(AuditEvent.seq)
            )
        )


def officer_client(client: FlaskClient, units: dict[str, str], username: str) -> FlaskClient:
    other = client.application.test_client()
    login(other, username, units[f"totp:{username}"])
    return other


def unit_public_id(runtime: Runtime, code: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Unit.public_id).where(Unit.code == code)).one()


# --- honest records ---------------------------------------------------------------------------


def test_one_tip_opened_event_per_visit_not_per_render(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert post_form(client, url, f"{url}/note", {"text": "Đã gọi tổ tuần tra"}).status_code == 302
    assert client.get(url).status_code == 200
    assert len(events(runtime, tip_id, actions.TIP_OPEN)) == 1
    # Another officer's visit (here the commander's) is a visit of its own.
    commander = officer_client(client, units, "chihuy")
    assert commander.get(url).status_code == 200
    assert len(events(runtime, tip_id, actions.TIP_OPEN)) == 2
    # A new login is a new visit.
    again = client.application.test_client()
    secret = units["totp:canbo"]
    login(again, "canbo", secret, code=totp_code(secret, 1))  # a code not used yet
    assert again.get(url).status_code == 200
    assert len(events(runtime, tip_id, actions.TIP_OPEN)) == 3


def test_a_commanders_glance_leaves_the_units_sla_running(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    from tipline.web.labels import sla_remaining

    commander = officer_client(client, units, "chihuy")
    assert commander.get(f"/triage/tips/{tip_id}").status_code == 200
    tip = the_tip(runtime, tip_id)
    assert tip.unit_opened_at is None and tip.first_opened_at is None
    assert sla_remaining(tip, datetime.now(UTC)) is not None
    login(client, "canbo", units["totp:canbo"])
    assert client.get(f"/triage/tips/{tip_id}").status_code == 200
    tip = the_tip(runtime, tip_id)
    assert tip.unit_opened_at is not None and sla_remaining(tip, datetime.now(UTC)) is None


def test_a_transfer_restarts_the_sla_in_the_new_unit(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    from tipline.models import Priority
    from tipline.web.labels import FIRST_OPEN_SLA, sla_deadline, sla_remaining

    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    client.get(url)
    before = the_tip(runtime, tip_id)
    assert before.unit_opened_at is not None
    target = unit_public_id(runtime, "v2025:32128")
    moved = post_form(client, url, f"{url}/transfer", {"value": target, "confirm": "1"})
    assert moved.status_code == 302
    after = the_tip(runtime, tip_id)
    assert after.unit_opened_at is None and after.arrived_at is not None
    assert after.arrived_at > (before.dispatched_at or before.created_at)
    limit = FIRST_OPEN_SLA[Priority(after.priority)]
    assert sla_deadline(after) == after.arrived_at + limit
    assert sla_remaining(after, datetime.now(UTC)) is not None


def test_deadlines_for_opening_answering_and_closing(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    from tipline.web.labels import deadlines

    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    page = client.get(url).get_data(as_text=True)
    assert 'id="deadlines"' in page and "Trả lời lần đầu" in page and "Kết thúc" in page
    post_form(client, url, f"{url}/reply", {"text": "Cảm ơn bạn, chúng tôi đang xác minh."})
    with client.application.test_request_context():
        opened, answered, closed = deadlines(the_tip(runtime, tip_id))
    assert opened.met_at is not None and answered.met_at is not None and closed.met_at is None
    assert opened.due < answered.due < closed.due


def test_the_automatic_sla_notice_is_named_apart_from_a_hand_over(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    from tipline.routing.escalation import escalate, needs_escalation
    from tipline.web.labels import ACTION_LABELS

    with runtime.sessions() as session, session.begin():
        tip = session.scalars(select(Tip).where(Tip.public_id == tip_id)).one()
        tip.priority = "urgent"
        assert needs_escalation(tip, 0)
        escalate(session, tip)
    notices = events(runtime, tip_id, actions.SLA_NOTICE)
    assert len(notices) == 1 and notices[0].actor_id is None
    assert events(runtime, tip_id, actions.ESCALATE) == []
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    page = client.get(url).get_data(as_text=True)
    # The commune still holds it (a notice moves nothing), and its clock still runs.
    assert the_tip(runtime, tip_id).unit_opened_at is not None
    assert "Tự động báo cấp trên" in page
    post_form(client, url, f"{url}/escalate", {"confirm": "1"})
    assert len(events(runtime, tip_id, actions.ESCALATE)) == 1
    with client.application.test_request_context():
        assert str(ACTION_LABELS[actions.ESCALATE]) != str(ACTION_LABELS[actions.SLA_NOTICE])


# --- the live inbox and notices ---------------------------------------------------------------


def test_the_live_poll_brings_new_tips_and_unread_counts(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    first = client.get("/triage/live")
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    body = first.get_json()
    assert body["unread"] == 1 and [t["code"] for t in body["tips"]] == [
        the_tip(runtime, tip_id).receipt_code
    ]
    row = body["tips"][0]
    assert row["unread"] is True and row["url"] == f"/triage/tips/{tip_id}"
    assert set(row) == {
        "id", "code", "url", "priority", "priority_label", "status_label", "category_label",
        "unit", "received", "urgent", "unread",
    }  # fmt: skip
    assert TEXT not in first.get_data(as_text=True)  # metadata only
    # Nothing changed since (a poll looks back a few seconds for late commits): nothing new.
    ahead = (datetime.fromisoformat(body["now"]) + timedelta(seconds=10)).isoformat()
    assert client.get("/triage/live", query_string={"since": ahead}).get_json()["tips"] == []
    # A new tip arrives: the next poll carries it, unread.
    second_tip = send_tip(client, runtime, "Có người buôn bán hàng cấm ở chợ", n=2)
    later = client.get("/triage/live", query_string={"since": body["now"]}).get_json()
    assert second_tip in [t["id"] for t in later["tips"] if t["unread"]] and later["unread"] == 2
    # Opened: read.
    client.get(f"/triage/tips/{second_tip}")
    assert client.get("/triage/live").get_json()["unread"] == 1
    inbox = client.get("/triage/").get_data(as_text=True)
    assert inbox.count('class="unread-dot"') == 1 and "1 chưa đọc" in inbox
    # Bad input: a clear 400.
    assert client.get("/triage/live", query_string={"since": "hôm qua"}).status_code == 400
    assert client.get("/triage/live", query_string={"since": "2026-01-01T00:00"}).status_code == 400
    # Another unit's officer sees none of it; an auditor has no live inbox.
    other = officer_client(client, units, "canbo2").get("/triage/live").get_json()
    assert other["tips"] == [] and other["unread"] == 0
    assert officer_client(client, units, "thanhtra").get("/triage/live").status_code == 403


def test_an_informants_new_message_marks_the_tip_unread_again(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    client.get(f"/triage/tips/{tip_id}")
    now = client.get("/triage/live").get_json()
    assert now["unread"] == 0
    raw = event(text="Bổ sung: họ có 3 người", msg_id="console-1b", user="5550001112223300001")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    later = client.get("/triage/live", query_string={"since": now["now"]}).get_json()
    assert later["unread"] == 1 and [(t["id"], t["unread"]) for t in later["tips"]] == [
        (tip_id, True)
    ]


def test_the_notification_list_shows_the_rows_and_marks_them_read(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    commander = officer_client(client, units, "chihuy")
    url = f"/triage/tips/{tip_id}"
    with runtime.sessions() as session:
        canbo = session.scalars(select(Officer.public_id).where(Officer.username == "canbo")).one()
    assert post_form(commander, url, f"{url}/assign", {"value": canbo}).status_code == 302
    login(client, "canbo", units["totp:canbo"])
    assert client.get("/triage/live").get_json()["notifications"] >= 1
    page = client.get("/triage/notifications").get_data(as_text=True)
    assert "Bạn được giao một tin báo" in page
    assert the_tip(runtime, tip_id).receipt_code in page
    assert client.get("/triage/live").get_json()["notifications"] == 0
    with runtime.sessions() as session:
        mine = session.scalars(select(Notification).where(Notification.kind == "assigned_tip"))
        assert all(n.read_at is not None for n in mine)


# --- one-screen triage ------------------------------------------------------------------------


def test_one_panel_saves_status_priority_category_and_assignee(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    with runtime.sessions() as session:
        canbo = session.scalars(select(Officer.public_id).where(Officer.username == "canbo")).one()
    form = {
        "triage-status": "verifying",
        "triage-priority": "low",
        "triage-category": "ma_tuy",
        "triage-assignee": canbo,
    }
    saved = post_form(client, url, f"{url}/triage", form)
    assert saved.status_code == 302 and saved.location.endswith(url)
    tip = the_tip(runtime, tip_id)
    assert (tip.status, tip.priority, tip.category) == ("verifying", "low", "ma_tuy")
    assert tip.assignee_id is not None
    for action in (actions.STATUS_CHANGE, actions.PRIORITY_CHANGE, actions.ASSIGN):
        assert len(events(runtime, tip_id, action)) == 1
    # Saved again unchanged: no event at all.
    post_form(client, url, f"{url}/triage", form)
    assert len(events(runtime, tip_id, actions.STATUS_CHANGE)) == 1
    # Bad input changes nothing.
    assert post_form(client, url, f"{url}/triage", form | {"triage-status": "x"}).status_code == 400
    other = form | {"triage-assignee": "nobody"}
    assert post_form(client, url, f"{url}/triage", other).status_code == 400
    # Closing asks first, saying what follows; nothing changes until confirmed.
    closing = post_form(client, url, f"{url}/triage", form | {"triage-status": "resolved"})
    page = closing.get_data(as_text=True)
    assert closing.status_code == 200 and 'id="confirm"' in page and "rời khỏi hộp tin báo" in page
    assert the_tip(runtime, tip_id).status == "verifying"
    confirmed = client.post(
        f"{url}/triage",
        data={"csrf_token": csrf_from(page), **form, "triage-status": "resolved", "confirm": "1"}
        | {"triage-confirm": "1"},
    )
    assert confirmed.status_code == 302 and the_tip(runtime, tip_id).status == "resolved"


def test_take_it_assigns_the_officer_and_starts_work(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    assert 'id="take"' in client.get(url).get_data(as_text=True)
    assert post_form(client, url, f"{url}/take", {}).status_code == 302
    tip = the_tip(runtime, tip_id)
    with runtime.sessions() as session:
        me = session.scalars(select(Officer.id).where(Officer.username == "canbo")).one()
    assert tip.status == "in_progress" and tip.assignee_id == me
    assert 'id="take"' not in client.get(url).get_data(as_text=True)
    with runtime.sessions() as session:  # no notice to oneself
        assigned = select(Notification).where(Notification.kind == "assigned_tip")
        assert session.scalars(assigned).all() == []


def test_transfer_and_escalation_ask_first_then_say_where_the_tip_went(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    target = unit_public_id(runtime, "v2025:32128")
    asked = post_form(client, url, f"{url}/transfer", {"value": target})
    page = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Công an xã Cái Nước" in page and 'id="confirm-yes"' in page
    assert the_tip(runtime, tip_id).unit_id != unit_id(runtime, "v2025:32128")
    assert events(runtime, tip_id, actions.TRANSFER) == []
    done = client.post(
        f"{url}/transfer", data={"csrf_token": csrf_from(page), "value": target, "confirm": "1"}
    )
    assert done.status_code == 302 and done.location.endswith(f"{url}/moved")
    moved = client.get(f"{url}/moved")
    text = moved.get_data(as_text=True)
    assert moved.status_code == 200 and "Công an xã Cái Nước" in text and "không còn" in text
    # Someone who did not hand it over learns nothing there.
    assert officer_client(client, units, "canbo2").get(f"{url}/moved").status_code == 404
    # Escalation: asked first too.
    other_tip = send_tip(client, runtime, "Có người đánh bạc ở quán số 8", n=3)
    other_url = f"/triage/tips/{other_tip}"
    asked = post_form(client, other_url, f"{other_url}/escalate", {})
    assert asked.status_code == 200 and "Công an tỉnh Cà Mau" in asked.get_data(as_text=True)
    assert the_tip(runtime, other_tip).escalation_level == 0


def unit_id(runtime: Runtime, code: str) -> int:
    with runtime.sessions() as session:
        return session.scalars(select(Unit.id).where(Unit.code == code)).one()


def test_canned_replies_per_unit(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    refused = post_form(
        client, "/triage/canned-replies/", "/triage/canned-replies/", {"title": "a", "text": "b"}
    )
    assert refused.status_code == 403  # officers use them; their commander keeps them
    with runtime.sessions() as session, session.begin():
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        session.add(CannedReply(unit_id=unit.id, title="Xin thêm", text="Bạn cho biết thêm giờ?"))
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    assert 'id="canned"' in page and "Bạn cho biết thêm giờ?" in page
    commander = officer_client(client, units, "chihuy")
    added = post_form(
        commander,
        "/triage/canned-replies/",
        "/triage/canned-replies/",
        {"title": "Cảm ơn", "text": "Cảm ơn bạn đã báo tin."},
    )
    assert added.status_code == 302
    empty = post_form(
        commander, "/triage/canned-replies/", "/triage/canned-replies/", {"title": "", "text": ""}
    )
    assert empty.status_code == 302
    with runtime.sessions() as session:
        assert len(session.scalars(select(CannedReply)).all()) == 2


class _Controls(HTMLParser):
    """Every id, every form control and every label's ``for`` on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.open_labels = 0
        self.wrapped: set[int] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "label":
            self.open_labels += 1
            if found.get("for"):
                self.label_for.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            if self.open_labels:
                self.wrapped.add(len(self.controls))
            self.controls.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1


def test_every_control_on_the_tip_and_inbox_pages_is_labelled_and_ids_are_unique(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    for url in ("/triage/", f"/triage/tips/{tip_id}", "/triage/notifications"):
        parsed = _Controls()
        parsed.feed(client.get(url).get_data(as_text=True))
        duplicates = {i for i in parsed.ids if parsed.ids.count(i) > 1}
        assert duplicates == set(), url
        unlabelled = [
            c
            for n, c in enumerate(parsed.controls)
            if n not in parsed.wrapped and c.get("id") not in parsed.label_for
        ]
        assert unlabelled == [], url


# --- print and export -------------------------------------------------------------------------


def test_the_pdf_export_holds_the_record_and_is_audited(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    post_form(client, url, f"{url}/note", {"text": "Đã cử tổ xác minh đến hẻm 12"})
    assert client.get(f"{url}/export.pdf").status_code == 405  # a POST, with its CSRF token
    response = post_form(client, url, f"{url}/export.pdf", {})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages)
    tip = the_tip(runtime, tip_id)
    for expected in (
        tip.receipt_code,
        "Công an xã Lương Thế Trân",
        "tàng trữ ma túy",
        "Đã cử tổ xác minh",
        "Diễn biến",
        "Tệp đính kèm",
    ):
        assert expected in text, expected
    exported = events(runtime, tip_id, actions.TIP_EXPORT)
    assert len(exported) == 1 and exported[0].actor_name == "canbo"
    # Another unit's officer gets no export, and the refusal is audited.
    other = officer_client(client, units, "canbo2")
    token = csrf_from(other.get("/triage/").get_data(as_text=True))
    assert other.post(f"{url}/export.pdf", data={"csrf_token": token}).status_code == 403


# --- every word Vietnamese ---------------------------------------------------------------------


def test_form_validation_messages_are_vietnamese(
    client: FlaskClient, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    page = client.get("/triage/", query_string={"since": "2026-13-45"}).get_data(as_text=True)
    assert "Ngày không hợp lệ" in page and "Not a valid" not in page
    client.post("/lang/en", data={"csrf_token": csrf_from(page)})
    english = client.get("/triage/", query_string={"since": "2026-13-45"}).get_data(as_text=True)
    assert "Not a valid date value." in english


def test_the_live_poll_keeps_the_session_alive(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    redis = runtime.redis
    sessions = list(redis.scan_iter("tipline:session:*"))
    assert sessions
    for key in sessions:
        redis.expire(key, 5)  # as if the officer had been idle for the whole timeout
    assert client.get("/triage/live").status_code == 200
    idle = runtime.config.session_idle_minutes * 60
    assert all(redis.ttl(key) > idle - 60 for key in sessions)
