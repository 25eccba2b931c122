"""Two events that are not an informant's message but change a tip's record.

- ``oa_send_*`` with ``sender.admin_id``: an OA administrator answered the informant in Zalo's
  own console (oa.zalo.me). Officers see it in the tip, attributed to "OA administrator (on
  Zalo)", and it is audited. Echoes of our own API sends (no ``admin_id``) stay ignored.
- ``user_withdraw``: the informant asked the OA's partners to delete their data. Like STOP,
  their address is erased and their tips are cut off; the tips' content is kept for the case,
  and the link from their Zalo id to the tips (the alias) is destroyed (docs/zalo-events.md).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import COMMUNE_OA, expand, run_jobs
from tests.triage_helpers import login, post_form
from tests.zalo_events import ADMIN, USER, event, oa_send, signed_headers, withdraw
from tipline.intake.expansion import informant_alias
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.models import (
    AuditEvent,
    Delivery,
    Direction,
    InboundEvent,
    Message,
    OutboxEntry,
    ReplyAddress,
    Tip,
)
from tipline.reply_addresses import informant_alias_key
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

CONSOLE_TEXT = "Chào bạn, bạn có thể cho biết thêm địa chỉ không?"


def post(client: FlaskClient, raw: bytes) -> Any:
    response = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert response.status_code == 200, response.get_json()
    expand(client.application.extensions["tipline"])
    return response.get_json()


def a_tip(client: FlaskClient, runtime: Runtime) -> str:
    post(client, event(text="Có người buôn bán ma túy ở hẻm 12", msg_id="cw-1"))
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(public_id) == "dispatched"
    return public_id


def audit(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- replies typed in Zalo's OA console ------------------------------------------------------


def test_an_oa_admins_reply_on_zalo_is_in_the_tip_attributed_and_audited(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip_id = a_tip(client, runtime)
    assert post(client, oa_send(text=CONSOLE_TEXT, msg_id="console-1")) == {"ok": True}
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        [reply] = [m for m in tip.messages if m.dedup_key is not None
                   and m.direction == Direction.OUTBOUND]
        assert reply.delivery == Delivery.SENT and reply.author_id is None
        assert reply.zalo_message_id == "console-1"
        assert reply.sealed_for_relay is None and CONSOLE_TEXT.encode() not in reply.sealed_body
        assert tip.last_outbound_at is not None
        # Nothing is sent: Zalo already delivered it.
        jobs = session.scalars(select(OutboxEntry.ref).where(OutboxEntry.job == "send")).all()
        assert reply.public_id not in jobs
    [event_] = audit(runtime, "oa_console_reply")
    assert event_.object_id == tip_id and event_.actor_id is None
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    assert CONSOLE_TEXT in page and "Quản trị viên OA (trên Zalo)" in page
    assert ADMIN not in page and USER not in page


def test_the_echo_of_our_own_send_is_ignored(client: FlaskClient, runtime: Runtime) -> None:
    a_tip(client, runtime)
    with runtime.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Message))
    assert post(client, oa_send(msg_id="echo-1", admin_id=None)) == {"ok": True, "ignored": True}
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == before


def test_a_console_reply_to_someone_without_a_tip_leaves_nothing(
    client: FlaskClient, runtime: Runtime
) -> None:
    assert post(client, oa_send(msg_id="console-x", user="1234567890123456789")) == {"ok": True}
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        row = session.scalars(select(InboundEvent)).one()
        assert row.processed_at is not None and row.sealed_event is None
        assert row.tip_public_id is None


def test_a_console_reply_delivered_twice_is_recorded_once(
    client: FlaskClient, runtime: Runtime
) -> None:
    a_tip(client, runtime)
    raw = oa_send(msg_id="console-2")
    post(client, raw)
    assert post(client, raw)["duplicate"] is True
    assert len(audit(runtime, "oa_console_reply")) == 1


def test_an_informant_quoting_the_console_reply_links_it(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip_id = a_tip(client, runtime)
    post(client, oa_send(text=CONSOLE_TEXT, msg_id="console-3"))
    post(client, event(text="Số 5 hẻm 12", msg_id="cw-2", quote_msg_id="console-3"))
    with runtime.sessions() as session:
        quoted = session.scalars(
            select(Message.public_id).where(Message.zalo_message_id == "console-3")
        ).one()
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    assert f'href="#m-{quoted}"' in page


def test_no_console_text_or_admin_id_in_any_log_line(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a_tip(client, runtime)
    post(client, oa_send(text=CONSOLE_TEXT, msg_id="console-4"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert CONSOLE_TEXT not in logged and ADMIN not in logged and USER not in logged


# --- user_withdraw: a data-subject request ----------------------------------------------------


def test_a_withdrawal_erases_the_address_cuts_the_tips_off_and_keeps_their_content(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip_id = a_tip(client, runtime)
    alias = informant_alias(informant_alias_key(runtime.keystore), COMMUNE_OA, "user:" + USER)
    assert runtime.keystore.get(f"address:{alias}") is not None
    with runtime.sessions() as session:
        bodies = {m.public_id: m.sealed_body for m in session.scalars(select(Message))}
    assert post(client, withdraw()) == {"ok": True}
    # The address: its key gone, the row gone.
    assert runtime.keystore.get(f"address:{alias}") is None
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ReplyAddress)) == 0
        tip = session.scalars(select(Tip)).one()
        assert tip.reply_address_id is None
        assert tip.informant_stopped_at is not None and tip.informant_withdrawn_at is not None
        # The identity link: no tip carries the alias their Zalo id gives any more.
        assert session.scalars(select(Tip).where(Tip.informant_alias == alias)).all() == []
        # The content: kept, unchanged, for the case (retention applies as to any tip).
        assert {m.public_id: m.sealed_body for m in session.scalars(select(Message))} == bodies
        # The receipt waiting to be sent goes nowhere.
        queued = session.scalars(select(Message).where(Message.direction == "out")).all()
        assert all(m.delivery == Delivery.NO_ADDRESS and m.sealed_for_relay is None
                   for m in queued)
    [event_] = audit(runtime, "informant_withdraw")
    assert event_.object_id is None and event_.detail_json in (None, "{}")
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    assert "rút lại sự đồng ý" in page and 'id="form-reply"' not in page
    refused = post_form(client, f"/triage/tips/{tip_id}", f"/triage/tips/{tip_id}/reply",
                        {"text": "Bạn còn đó không?"})
    assert refused.status_code == 302
    with runtime.sessions() as session:
        assert session.scalar(
            select(func.count()).select_from(Message).where(Message.author_id.is_not(None))
        ) == 0


def test_nothing_is_sent_to_an_informant_who_withdrew(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    a_tip(client, runtime)  # the receipt is queued, not sent yet
    post(client, withdraw())
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])
    assert httpx.get(f"{sim}/_sim/messages").json() == []


def test_writing_again_after_a_withdrawal_starts_an_unlinked_tip(
    client: FlaskClient, runtime: Runtime
) -> None:
    a_tip(client, runtime)
    post(client, withdraw())
    post(client, event(text="Tôi muốn báo thêm", msg_id="cw-3"))
    with runtime.sessions() as session:
        first, second = session.scalars(select(Tip).order_by(Tip.id)).all()
    assert first.informant_alias != second.informant_alias
    assert first.pseudonym != second.pseudonym
    assert second.informant_stopped_at is None and second.reply_address_id is not None


def test_a_withdrawal_of_someone_without_a_tip_changes_nothing_and_is_not_audited(
    client: FlaskClient, runtime: Runtime
) -> None:
    a_tip(client, runtime)
    assert post(client, withdraw(user="1234567890123456789")) == {"ok": True}
    with runtime.sessions() as session:
        assert session.scalars(select(Tip.informant_stopped_at)).one() is None
    assert audit(runtime, "informant_withdraw") == []


def test_a_withdrawal_delivered_twice_is_handled_once(
    client: FlaskClient, runtime: Runtime
) -> None:
    a_tip(client, runtime)
    raw = withdraw()
    post(client, raw)
    assert post(client, raw)["duplicate"] is True
    assert len(audit(runtime, "informant_withdraw")) == 1
