"""An event that cannot be expanded (sealed to the wrong key, damaged at rest, a bug) holds up
no other (issue 15: one such event blocked every later tip while /healthz said ok). It is
tried again on the next passes, set aside after a few failures, shown to admins by number and
time only, and counted against health until an admin has it tried again."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.conftest import expand
from tests.test_quarantine import admin  # noqa: F401 - the fixture
from tests.zalo_events import event, signed_headers
from tipline.intake.expansion import EXPAND_ATTEMPTS
from tipline.jobs.worker import pending_work
from tipline.metrics import pipeline_state
from tipline.models import InboundEvent, Tip
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

SECRET_TEXT = "Ông Bí Mật bán ma túy ở hẻm 77"


def post(client: FlaskClient, text: str, msg_id: str, user: str) -> None:
    raw = event(text=text, msg_id=msg_id, user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200


def damage_first_event(runtime: Runtime) -> int:
    """Flip one byte of the first stored event's ciphertext: it no longer opens."""
    with runtime.sessions() as session, session.begin():
        row = session.scalars(select(InboundEvent).order_by(InboundEvent.id)).first()
        assert row is not None and row.sealed_event is not None
        sealed = bytearray(row.sealed_event)
        sealed[-5] ^= 0xFF
        session.execute(
            update(InboundEvent).where(InboundEvent.id == row.id).values(sealed_event=bytes(sealed))
        )
        return row.id


def test_an_event_that_cannot_be_expanded_holds_up_no_other_and_is_set_aside(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    post(client, SECRET_TEXT, "bad", "900000000000000001")
    bad = damage_first_event(runtime)
    post(client, "Có người đánh bạc ở chợ", "good-1", "900000000000000002")
    post(client, "Có người buôn lậu ở bến", "good-2", "900000000000000003")
    expand(runtime)
    with runtime.sessions() as session:
        assert len(session.scalars(select(Tip)).all()) == 2  # the later events went through
        row = session.get_one(InboundEvent, bad)
        assert row.processed_at is None and row.expand_failures >= 1
    for _ in range(EXPAND_ATTEMPTS):
        expand(runtime)
    with runtime.sessions() as session:
        row = session.get_one(InboundEvent, bad)
        assert row.expand_failures == EXPAND_ATTEMPTS and row.expand_failed_at is not None
        assert row.sealed_event is not None  # kept: an admin may have it tried again
    assert pending_work(runtime)[0] is False  # set aside: no longer work for the relay
    assert pipeline_state(runtime)["events_failed"] == 1
    assert SECRET_TEXT not in caplog.text


def test_health_names_set_aside_events_and_an_admin_has_them_tried_again(
    client: FlaskClient, runtime: Runtime, admin: FlaskClient  # noqa: F811
) -> None:
    post(client, SECRET_TEXT, "bad", "900000000000000001")
    damage_first_event(runtime)
    for _ in range(EXPAND_ATTEMPTS):
        expand(runtime)
    health = client.get("/healthz")
    assert health.status_code == 503
    assert any("could not be expanded" in r for r in health.get_json()["reasons"])
    page = admin.get("/admin/zalo-events")
    text = page.get_data(as_text=True)
    assert "Sự kiện không xử lý được" in text and SECRET_TEXT not in text
    answer = admin.post("/admin/zalo-events/retry-failed", data={"csrf_token": csrf(admin)})
    assert answer.status_code == 302
    with runtime.sessions() as session:
        row = session.scalars(select(InboundEvent)).one()
        assert row.expand_failed_at is None and row.expand_failures == 0
    assert pending_work(runtime)[0] is True


def csrf(client: FlaskClient) -> str:
    import re

    page = client.get("/admin/zalo-events").get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "the page has a form"
    return found[1]


def test_an_event_that_fails_half_written_is_rolled_back_alone(
    client: FlaskClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is written without a savepoint an event (they cost a tenth of expansion); when
    one event raises after part of it was written (here: its tip row is in, then a bug), the
    batch is written again with savepoints, so that event's rows and audit events go and every
    other event's stay."""
    from sqlalchemy import func

    from tipline.audit.chain import verify_chain
    from tipline.intake import expansion
    from tipline.models import AuditEvent

    real = expansion._insert_tip

    def fails_for_the_second(conn: object, s: object, p: object, *args: object) -> int:
        tip_id = real(conn, s, p, *args)  # type: ignore[arg-type]
        if "buôn lậu" in p.body.decode():  # type: ignore[attr-defined]
            raise RuntimeError("a bug after the tip row was written")
        return tip_id

    monkeypatch.setattr(expansion, "_insert_tip", fails_for_the_second)
    post(client, "Có người đánh bạc ở chợ", "m-1", "900000000000000001")
    post(client, "Có người buôn lậu ở bến", "m-2", "900000000000000002")
    post(client, "Có người trộm xe ở hẻm 9", "m-3", "900000000000000003")
    assert expansion.expand_pending(runtime) == 3
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tip)) == 2
        failed = session.scalars(
            select(InboundEvent).where(InboundEvent.expand_failures == 1)
        ).all()
        assert len(failed) == 1 and failed[0].processed_at is None
        received = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "tip_received")
        ).all()
        assert len(received) == 2
        assert verify_chain(session).ok
