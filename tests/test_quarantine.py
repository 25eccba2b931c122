"""A validly signed event is never answered 4xx: what cannot be read is kept in quarantine.

Zalo retries a non-200 answer five times and then cancels the app's webhook subscription for
every OA (research/zalo.md §8.2). So: a bad signature is 401 (it is not Zalo), but anything
Zalo signed gets 200. What Tipline cannot read is sealed to the receiving OA's unit key when
the OA is known (only a keyed digest and the size otherwise), and admins see its metadata.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from keys import EnvelopeError, webhook_mac
from tests.conftest import APP_ID, COMMUNE_OA, OA_SECRET, OFFICER_PASSWORD, expand
from tests.databases import every_value
from tests.triage_helpers import login
from tests.zalo_events import TS, USER, console_test, dumps, event, signed_headers
from tipline.keychain import unit_keys_of, unlock_officer_key
from tipline.models import InboundEvent, Message, Officer, QuarantinedEvent, Tip, UnitKey
from tipline.models.sealed_fields import QUARANTINED_EVENT
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")

SECRET_TEXT = "Ông Bí Mật bán ma túy ở hẻm 99"


def post(client: FlaskClient, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/zalo/webhook", data=raw, headers=signed_headers(raw) if headers is None else headers
    )


def quarantined(runtime: Runtime) -> list[QuarantinedEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(QuarantinedEvent).order_by(QuarantinedEvent.id)))


def unreadable_with_known_oa() -> bytes:
    """Zalo's shape, but the text is over the 20,000 characters Tipline reads."""
    return event(text=SECRET_TEXT + " " + "x" * 20_000, msg_id="q-long")


def test_a_signed_event_tipline_cannot_read_is_200_and_quarantined(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = unreadable_with_known_oa()
    response = post(client, raw)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"ok": True, "quarantined": True}
    [row] = quarantined(runtime)
    assert row.oa_id == COMMUNE_OA and row.size == len(raw)
    assert row.reason == "too_long" and row.event_name == "user_send_text"
    assert row.received_at is not None and len(row.digest) == 64
    assert row.sealed_event is not None and row.unit_key_id is not None
    assert SECRET_TEXT.encode() not in row.sealed_event and USER.encode() not in row.sealed_event
    # Nothing became a tip or a job; nothing to expand.
    assert expand(runtime) == 0
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 0
        assert session.scalar(select(func.count()).select_from(Tip)) == 0


def test_the_quarantined_copy_opens_with_the_oas_unit_key_only(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = unreadable_with_known_oa()
    assert post(client, raw).status_code == 200
    [row] = quarantined(runtime)
    assert row.sealed_event is not None
    with runtime.sessions() as session:
        unit_key = session.get_one(UnitKey, row.unit_key_id)
        assert unit_key.unit.code == "v2025:32134"  # the commune whose OA received it
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        keys = unit_keys_of(session, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
        chihuy = session.scalars(select(Officer).where(Officer.username == "canbo2")).one()
        other = unit_keys_of(session, chihuy, unlock_officer_key(chihuy, OFFICER_PASSWORD))
    assert QUARANTINED_EVENT.open(keys[unit_key.id], row.sealed_event, digest=row.digest) == raw
    # Not with another unit's key, not the transit epoch's, not as another row.
    for key in other.values():
        with pytest.raises(EnvelopeError):
            QUARANTINED_EVENT.open(key, row.sealed_event, digest=row.digest)
    with pytest.raises(EnvelopeError):
        QUARANTINED_EVENT.open(keys[unit_key.id], row.sealed_event, digest="0" * 64)


def test_an_unknown_oa_keeps_only_a_digest_and_a_size(
    client: FlaskClient, runtime: Runtime, config: Any
) -> None:
    raw = event(oa="1" * 40, text=SECRET_TEXT, msg_id="q-unknown-oa")
    assert post(client, raw).status_code == 200
    [row] = quarantined(runtime)
    assert row.oa_id is None and row.sealed_event is None and row.unit_key_id is None
    assert row.size == len(raw) and row.reason == "no_oa"
    dump = "\n".join(str(v) for v in every_value(config.database_url))
    assert SECRET_TEXT not in dump and USER not in dump and "1" * 40 not in dump


def test_a_user_id_is_never_taken_for_the_oa(client: FlaskClient, runtime: Runtime) -> None:
    """Only an OA this install serves is named; a sender id in the OA's place is not stored."""
    body = json.loads(event(msg_id="q-swap"))
    body["recipient"] = {"id": "not an id"}
    body["oa_id"] = USER
    raw = dumps(body)
    assert post(client, raw).status_code == 200
    [row] = quarantined(runtime)
    assert row.oa_id is None


def test_zalos_retry_of_a_quarantined_event_is_kept_once(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = unreadable_with_known_oa()
    assert post(client, raw).status_code == 200
    again = post(client, raw, {**signed_headers(raw), "num_retry": "1"})
    assert again.status_code == 200 and again.get_json()["quarantined"] is True
    assert len(quarantined(runtime)) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (console_test(), "no_message"),
        (dumps({**json.loads(event(msg_id="q-1")), "message": "<script>"}), "no_message"),
        (dumps({k: v for k, v in json.loads(event(msg_id="q-2")).items() if k != "sender"}),
         "no_sender"),
        (event(msg_id="q-3").replace(b'"msg_id":"q-3"', b'"msg_id":{"$ne":null}'), "bad_msg_id"),
        (event("user_send_image", msg_id="q-4",
               attachments=[{"type": "image", "payload": {"url": f"https://x/{n}"}}
                            for n in range(21)]), "too_many_attachments"),
        (dumps({k: v for k, v in json.loads(event(msg_id="q-5")).items()
                if k != "event_name"}), "no_event_name"),
        (event(msg_id="q-6").replace(b"12", b"\\ud800 12"), "not_unicode"),
        (event(msg_id="q-7").replace("ma túy".encode(), b"ma t\xff\xfey"), "unreadable"),
        (event(msg_id="q-8").replace(b"12", b"1\x002"), "unreadable"),
        (event(msg_id="q-9")[:-1], "unreadable"),  # cut short: not JSON any more
    ],
    ids=["console test", "message not an object", "no sender", "msg_id an object",
         "21 attachments", "no event name", "lone surrogate", "invalid UTF-8", "raw NUL",
         "truncated"],
)
def test_every_unreadable_signed_body_is_quarantined_with_its_reason(
    client: FlaskClient, runtime: Runtime, raw: bytes, reason: str
) -> None:
    # Every one carries the timestamp TS, signed over exactly these bytes (JSON or not).
    headers = {"Content-Type": "application/json",
               "X-ZEvent-Signature": "mac=" + webhook_mac(APP_ID, raw, TS, OA_SECRET)}
    response = post(client, raw, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    [row] = quarantined(runtime)
    assert row.reason == reason and row.size == len(raw)


def test_an_event_of_another_app_id_signed_for_ours_is_quarantined(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = event(app_id="1111111111111111111", msg_id="q-app")
    assert post(client, raw).status_code == 200
    [row] = quarantined(runtime)
    assert row.reason == "other_app"


def test_a_bad_signature_is_still_401_and_quarantines_nothing(
    client: FlaskClient, runtime: Runtime
) -> None:
    raw = unreadable_with_known_oa()
    response = post(client, raw, {"Content-Type": "application/json",
                                  "X-ZEvent-Signature": "mac=" + "0" * 64})
    assert response.status_code == 401
    assert quarantined(runtime) == []


def test_no_quarantined_content_in_any_log_line(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    assert post(client, unreadable_with_known_oa()).status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "quarantined" in logged
    assert SECRET_TEXT not in logged and USER not in logged


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


def test_admins_see_quarantine_metadata_and_never_content(
    admin: FlaskClient, runtime: Runtime
) -> None:
    assert post(admin, unreadable_with_known_oa()).status_code == 200
    assert post(admin, event(oa="1" * 40, text=SECRET_TEXT, msg_id="q-b")).status_code == 200
    page = admin.get("/admin/zalo-events")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="quarantine-count">2<' in html
    assert COMMUNE_OA in html
    assert "Tin quá dài" in html  # the reason, in Vietnamese
    assert SECRET_TEXT not in html and "Bí Mật" not in html and USER not in html
    with runtime.sessions() as session:
        digest = session.scalars(select(QuarantinedEvent.digest)).first()
    assert digest is not None and digest not in html


def test_only_admins_see_the_quarantine(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    login(client, "canbo", units["totp:canbo"])
    assert client.get("/admin/zalo-events").status_code == 403


def test_a_known_message_event_with_an_unusual_field_is_not_quarantined(
    client: FlaskClient, runtime: Runtime
) -> None:
    """Quarantine is for what cannot be read; an extra field is no reason."""
    body = json.loads(event(msg_id="q-extra"))
    body["message"]["something_new"] = {"x": 1}
    raw = dumps(body)
    assert post(client, raw).get_json() == {"ok": True}
    assert quarantined(runtime) == []
    expand(runtime)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1


def test_retention_deletes_a_quarantined_event_after_30_days(
    client: FlaskClient, runtime: Runtime, config: Any
) -> None:
    from datetime import timedelta

    from tipline.models import utcnow
    from tipline.retention import QUARANTINE_KEPT, retention_pass

    assert post(client, unreadable_with_known_oa()).status_code == 200
    retention_pass(runtime.sessions, config, utcnow() + QUARANTINE_KEPT - timedelta(hours=1))
    assert len(quarantined(runtime)) == 1
    retention_pass(runtime.sessions, config, utcnow() + QUARANTINE_KEPT + timedelta(hours=1))
    assert quarantined(runtime) == []
