"""The admin's Zalo OA page and Zalo's consent (OAuth v4 with PKCE), end to end.

An OA attached the README's way has no tokens. The admin clicks "Kết nối": the browser goes to
Zalo's consent page (the simulator's), the OA's administrator approves, Zalo sends the browser
back to the callback, the code is exchanged and the tokens stored sealed, and that OA's next
tip is acknowledged. Then: every way a callback must be refused, the page's states and alerts,
detaching an OA and moving one (both confirmed first), a malformed OA id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from keys import pkce_challenge
from tests.conftest import APP_ID, COMMUNE_OA, OFFICER_PASSWORD, PROVINCE_OA, expand, run_jobs
from tests.test_service_keys import public_only
from tests.triage_helpers import csrf_from, login, post_form, totp_code
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config, MissingSecret
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.models import AuditEvent, Delivery, InboundEvent, Message, OfficialAccount, Unit
from tipline.runtime import Runtime, install
from tipline.units import add_unit, set_oa
from tipline.zalo.accounts import CONSENT_TTL, _consent_key
from tipline.zalo.tokens import open_tokens

NEW_OA = "3886132808788132137"
NEW_UNIT = "v2025:32137"


TOTP: dict[str, str] = {}


def make_admin(app: Flask, runtime: Runtime, username: str = "quantri") -> FlaskClient:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        account = add_officer(
            session,
            username=username,
            display_name="Quản trị",
            role="admin",
            unit_code=None,
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    TOTP[username] = account.totp_secret
    client = app.test_client()
    assert login(client, username, account.totp_secret).status_code == 302
    return client


@pytest.fixture
def admin(app: Flask, runtime: Runtime, units: dict[str, str], sim: str) -> FlaskClient:
    """Logged in as "quantri"; the simulator live; NEW_OA attached the README's way."""
    with runtime.sessions() as session, session.begin():
        add_unit(
            session, code=NEW_UNIT, name="Công an xã Hưng Mỹ", level="commune",
            parent_code="v2025:96",
        )
        set_oa(session, NEW_UNIT, NEW_OA)
    return make_admin(app, runtime)


@dataclass
class Consent:
    """Where Zalo sent the browser back: the callback's path and query."""

    callback: str
    state: str
    permission_url: str


def start(admin: FlaskClient, oa_id: str) -> httpx.URL:
    started = admin.get(f"/admin/zalo/connect/{oa_id}")
    assert started.status_code == 302, started.get_data(as_text=True)
    return httpx.URL(started.headers["Location"])


def approve(permission_url: httpx.URL, oa_id: str, **tamper: str) -> httpx.URL:
    """The OA's administrator on Zalo's consent page (the simulator's): look, then approve."""
    page = httpx.get(permission_url)
    assert page.status_code == 200 and 'id="approve"' in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text))
    approved = httpx.post(permission_url, data={**fields, **tamper, "oa_id": oa_id})
    assert approved.status_code == 302, approved.text
    return httpx.URL(approved.headers["Location"])


def consent(admin: FlaskClient, oa_id: str, *, approve_as: str | None = None) -> Consent:
    url = start(admin, oa_id)
    back = approve(url, approve_as or oa_id)
    return Consent(
        callback=f"{back.path}?{back.query.decode()}",
        state=url.params["state"],
        permission_url=str(url),
    )


def oa_row(runtime: Runtime, oa_id: str) -> OfficialAccount | None:
    with runtime.sessions() as session:
        return session.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
        ).one_or_none()


def events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def tip_through(client: FlaskClient, runtime: Runtime, oa: str, user: str, msg_id: str) -> Message:
    """A new informant's tip through the webhook; dispatched; its acknowledgement sent."""
    raw = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id=msg_id, oa=oa, user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        tip_id = session.scalars(
            select(InboundEvent.tip_public_id).order_by(InboundEvent.id.desc()).limit(1)
        ).one()
    assert tip_id is not None and dispatch_tip(tip_id) == "dispatched"
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])
    with runtime.sessions() as session:
        message = session.scalars(
            select(Message).where(Message.direction == "out").order_by(Message.id.desc()).limit(1)
        ).one()
        _ = message.tip.receipt_code
        return message


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# --- the whole consent --------------------------------------------------------------------------


def test_connect_approve_callback_stores_the_tokens_and_the_oas_next_tip_is_acknowledged(
    admin: FlaskClient, runtime: Runtime, sim: str
) -> None:
    # Attached the README's way: no tokens, so the acknowledgement fails, and the page says so.
    before = tip_through(admin.application.test_client(), runtime, NEW_OA, "1" * 19, "oa-1")
    assert before.delivery == Delivery.FAILED
    page = text(admin.get("/admin/zalo/"))
    row = page[page.index(f'id="oa-{NEW_OA}"'):]
    row = row[: row.index("</tr>")]
    assert 'data-state="missing"' in row and "Chưa kết nối" in row
    assert f'href="/admin/zalo/connect/{NEW_OA}"' in row and "Kết nối" in row
    assert "has no tokens" in row  # the failed acknowledgement's reason

    url = start(admin, NEW_OA)
    assert str(url).startswith(f"{sim}/_sim/v4/oa/permission?")
    params = url.params
    assert set(params) == {"app_id", "redirect_uri", "code_challenge", "state"}
    assert params["app_id"] == APP_ID
    assert params["redirect_uri"] == "http://localhost/admin/zalo/callback"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert len(params["state"]) >= 32
    # The verifier stays on the server: the URL carries only its S256 challenge.
    key = _consent_key(runtime, params["state"])
    kept = runtime.redis.get(key)
    assert kept is not None and params["state"].encode() not in key.encode()
    assert 0 < runtime.redis.ttl(key) <= CONSENT_TTL == 600
    import json

    assert pkce_challenge(json.loads(kept)["verifier"]) == params["code_challenge"]

    back = approve(url, NEW_OA)
    assert (back.path, back.params["oa_id"], back.params["state"]) == (
        "/admin/zalo/callback", NEW_OA, params["state"]
    )
    done = admin.get(f"{back.path}?{back.query.decode()}")
    assert done.status_code == 200, text(done)
    assert 'id="zalo-ok"' in text(done) and "đã được kết nối với Zalo" in text(done)

    oa = oa_row(runtime, NEW_OA)
    assert oa is not None and oa.sealed_tokens is not None and oa.last_error is None
    pair = open_tokens(oa, runtime.config.secrets.relay_key)
    assert pair is not None and pair.access_token not in text(done)
    assert runtime.redis.get(key) is None  # the state is spent
    [connected] = events(runtime, "oa_connect")
    assert connected.actor_name == "quantri" and connected.object_id == NEW_OA
    assert connected.detail == {"via": "consent"} and connected.unit_code == NEW_UNIT
    assert connected.client_address is not None and connected.outcome == "ok"
    assert 'data-state="ok"' in text(admin.get("/admin/zalo/"))

    after = tip_through(admin.application.test_client(), runtime, NEW_OA, "2" * 19, "oa-2")
    assert after.delivery == Delivery.SENT
    acks = [c for c in httpx.get(f"{sim}/_sim/messages").json() if c["oa_id"] == NEW_OA]
    assert len(acks) == 1 and after.tip.receipt_code in acks[0]["text"]


def test_the_redirect_uri_is_on_tipline_public_url_when_set(
    admin: FlaskClient, runtime: Runtime
) -> None:
    runtime.config = runtime.config.with_overrides(public_url="https://baotin.example.vn")
    url = start(admin, NEW_OA)
    assert url.params["redirect_uri"] == "https://baotin.example.vn/admin/zalo/callback"


# --- callbacks refused ------------------------------------------------------------------------


def refused(response: TestResponse, words: str) -> None:
    assert response.status_code == 400, text(response)
    assert 'id="zalo-refused"' in text(response) and words in text(response)


def test_a_replayed_callback_is_refused_and_changes_nothing(
    admin: FlaskClient, runtime: Runtime
) -> None:
    flow = consent(admin, NEW_OA)
    assert admin.get(flow.callback).status_code == 200
    generation = oa_row(runtime, NEW_OA).token_generation  # type: ignore[union-attr]
    refused(admin.get(flow.callback), "đã được dùng")
    assert oa_row(runtime, NEW_OA).token_generation == generation  # type: ignore[union-attr]
    connected, denied = events(runtime, "oa_connect")
    assert connected.outcome == "ok"
    assert denied.outcome == "denied" and denied.detail == {"via": "consent", "reason": "state"}
    assert denied.object_id == NEW_OA and denied.actor_name == "quantri"


def test_an_unknown_or_missing_state_is_refused(admin: FlaskClient, runtime: Runtime) -> None:
    flow = consent(admin, NEW_OA)
    forged = flow.callback.replace(flow.state, "0" * 32)
    refused(admin.get(forged), "không hợp lệ")
    refused(admin.get(re.sub(r"&?state=[^&]*", "", flow.callback)), "không hợp lệ")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]
    # The real state is still good once.
    assert admin.get(flow.callback).status_code == 200


def test_an_expired_state_is_refused(admin: FlaskClient, runtime: Runtime) -> None:
    flow = consent(admin, NEW_OA)
    key = _consent_key(runtime, flow.state)
    assert 0 < runtime.redis.ttl(key) <= 600
    runtime.redis.expire(key, 0)  # what Redis does when the 10 minutes are up
    refused(admin.get(flow.callback), "10 phút")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]


def test_another_sessions_callback_is_refused(
    admin: FlaskClient, app: Flask, runtime: Runtime
) -> None:
    flow = consent(admin, NEW_OA)
    # Nobody logged in: to the login page first (default deny), the state untouched.
    stranger = app.test_client().get(flow.callback)
    assert stranger.status_code == 302 and urlsplit(stranger.location).path == "/login"
    # Another admin's session: refused, and the state is spent by the attempt.
    refused(make_admin(app, runtime, "quantri2").get(flow.callback), "phiên")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]
    refused(admin.get(flow.callback), "không hợp lệ")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]


def test_the_same_admin_in_another_session_is_refused(
    admin: FlaskClient, app: Flask, runtime: Runtime
) -> None:
    """The state is bound to the session, not only to the account: a link that leaked (in a
    browser's history, a proxy's log) does not finish a consent from another browser."""
    flow = consent(admin, NEW_OA)
    elsewhere = app.test_client()
    code = totp_code(TOTP["quantri"], offset_steps=1)  # the first login used this step's code
    assert login(elsewhere, "quantri", "", code=code).status_code == 302
    refused(elsewhere.get(flow.callback), "phiên")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]


def test_zalo_returning_another_oa_is_refused(admin: FlaskClient, runtime: Runtime) -> None:
    flow = consent(admin, NEW_OA, approve_as=COMMUNE_OA)
    commune_before = oa_row(runtime, COMMUNE_OA).sealed_tokens  # type: ignore[union-attr]
    refused(admin.get(flow.callback), "OA khác")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]
    assert oa_row(runtime, COMMUNE_OA).sealed_tokens == commune_before  # type: ignore[union-attr]
    [denied] = events(runtime, "oa_connect")
    assert denied.detail == {"via": "consent", "reason": "wrong_oa"}


def test_no_code_means_no_consent(admin: FlaskClient, runtime: Runtime) -> None:
    flow = consent(admin, NEW_OA)
    refused(admin.get(re.sub(r"code=[^&]*&?", "", flow.callback)), "không đồng ý")
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]


def test_a_challenge_that_is_not_ours_fails_the_exchange(
    admin: FlaskClient, runtime: Runtime
) -> None:
    """Zalo (the simulator) checks our verifier against the challenge the consent carried: a
    code obtained for someone else's challenge cannot be exchanged by us."""
    url = start(admin, NEW_OA)
    back = approve(url, NEW_OA, code_challenge=pkce_challenge("x" * 43))
    response = admin.get(f"{back.path}?{back.query.decode()}")
    refused(response, "Zalo từ chối")
    assert "-14022" in text(response)
    assert oa_row(runtime, NEW_OA).sealed_tokens is None  # type: ignore[union-attr]
    [failed] = events(runtime, "oa_connect")
    assert failed.outcome == "failed"
    assert failed.detail == {"via": "consent", "reason": "refused", "zalo_error": "-14022"}


def test_connect_needs_a_known_oa_and_the_apps_credentials(
    admin: FlaskClient, runtime: Runtime
) -> None:
    assert admin.get("/admin/zalo/connect/3886132808700000009").status_code == 404
    assert admin.get("/admin/zalo/connect/not-digits").status_code == 404
    runtime.config = runtime.config.with_overrides(zalo_app_secret="")
    answer = admin.get(f"/admin/zalo/connect/{NEW_OA}")
    assert answer.status_code == 302 and urlsplit(answer.location).path == "/admin/zalo/"
    page = text(admin.get("/admin/zalo/"))
    assert "ZALO_APP_SECRET" in page and "Lỗi cấu hình" in page


# --- the page ---------------------------------------------------------------------------------


def test_the_page_shows_each_oa_state_and_alert_in_vietnamese(
    admin: FlaskClient, runtime: Runtime
) -> None:
    from sqlalchemy import update

    with runtime.sessions() as session, session.begin():
        session.execute(
            update(OfficialAccount)
            .where(OfficialAccount.oa_id == PROVINCE_OA)
            .values(token_error="token refresh refused (zalo -14020): an OA admin must re-consent")
        )
    page = text(admin.get("/admin/zalo/"))
    for oa_id, state, words in [
        (NEW_OA, "missing", "Chưa kết nối"),
        (PROVINCE_OA, "error", "Kết nối lại"),
        (COMMUNE_OA, "ok", "Chưa nhận được tin nào từ Zalo"),
    ]:
        row = page[page.index(f'id="oa-{oa_id}"'):]
        row = row[: row.index("</tr>")]
        assert f'data-state="{state}"' in row and words in row, (oa_id, row)
    with runtime.sessions() as session:
        commune = session.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == COMMUNE_OA)
        ).one()
        pair = open_tokens(commune, runtime.config.secrets.relay_key)
    assert pair is not None
    assert pair.access_token not in page and pair.refresh_token not in page
    assert admin.get("/admin/").status_code == 200
    assert 'href="/admin/zalo/"' in text(admin.get("/admin/"))


def test_detaching_an_oa_asks_first_and_says_what_it_does(
    admin: FlaskClient, runtime: Runtime
) -> None:
    asked = post_form(admin, "/admin/zalo/", f"/admin/zalo/{COMMUNE_OA}/detach", {})
    assert asked.status_code == 200
    page = text(asked)
    assert 'id="detach-consequence"' in page and "bị giữ lại" in page
    assert "Công an xã Lương Thế Trân" in page
    assert oa_row(runtime, COMMUNE_OA) is not None and events(runtime, "oa_detach") == []
    done = admin.post(
        f"/admin/zalo/{COMMUNE_OA}/detach", data={"csrf_token": csrf_from(page), "confirm": "1"}
    )
    assert done.status_code == 302 and urlsplit(done.location).path == "/admin/zalo/"
    assert oa_row(runtime, COMMUNE_OA) is None
    [detached] = events(runtime, "oa_detach")
    assert detached.object_id == COMMUNE_OA and detached.actor_name == "quantri"
    assert detached.unit_code == "v2025:32134"
    gone = post_form(admin, "/admin/zalo/", f"/admin/zalo/{COMMUNE_OA}/detach", {})
    assert gone.status_code == 404


def test_moving_an_oa_to_another_unit_asks_first(admin: FlaskClient, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        target = session.scalars(select(Unit.public_id).where(Unit.code == "v2025:32128")).one()
    url = f"/admin/units/{target}/oa"
    asked = post_form(admin, "/admin/", url, {"oa_id": COMMUNE_OA})
    assert asked.status_code == 200
    page = text(asked)
    assert 'id="confirm-move"' in page and "Công an xã Lương Thế Trân" in page
    assert "Công an xã Cái Nước" in page
    # Nothing happened yet: the OA is where it was, and no event was written.
    assert oa_row(runtime, COMMUNE_OA).unit_id == _unit_id(runtime, "v2025:32134")  # type: ignore[union-attr]
    assert len(events(runtime, "oa_attach")) == 3
    done = admin.post(
        url, data={"csrf_token": csrf_from(page), "oa_id": COMMUNE_OA, "move": "1"}
    )
    assert done.status_code == 302
    assert oa_row(runtime, COMMUNE_OA).unit_id == _unit_id(runtime, "v2025:32128")  # type: ignore[union-attr]
    moved = events(runtime, "oa_attach")[-1]
    assert moved.detail == {"oa": COMMUNE_OA, "from_unit": "v2025:32134"}
    assert moved.actor_name == "quantri"


def _unit_id(runtime: Runtime, code: str) -> int:
    with runtime.sessions() as session:
        return session.scalars(select(Unit.id).where(Unit.code == code)).one()


@pytest.mark.parametrize(
    ("value", "words"),
    [("abc", "Chỉ gồm chữ số"), ("", "Nhập mã OA"), ("1" * 40, "Chỉ gồm chữ số")],
)
def test_a_bad_oa_id_is_a_vietnamese_form_error(
    admin: FlaskClient, runtime: Runtime, value: str, words: str
) -> None:
    with runtime.sessions() as session:
        target = session.scalars(select(Unit.public_id).where(Unit.code == "v2025:32128")).one()
    answer = post_form(admin, "/admin/", f"/admin/units/{target}/oa", {"oa_id": value})
    assert answer.status_code == 400
    page = text(answer)
    assert f'id="oa-error-{target}"' in page and words in page and 'role="alert"' in page
    assert "Bad Request" not in page
    assert len(events(runtime, "oa_attach")) == 3  # the fixtures' three, nothing more


@pytest.mark.parametrize("username", ["canbo", "chihuy", "thanhtra"])
def test_only_admins(
    client: FlaskClient, units: dict[str, str], username: str
) -> None:
    login(client, username, units[f"totp:{username}"])
    for path in ("/admin/zalo/", f"/admin/zalo/connect/{COMMUNE_OA}", "/admin/zalo/callback"):
        assert client.get(path).status_code == 403


def test_a_web_tier_holding_only_the_relay_keys_public_half_connects_an_oa(
    env: dict[str, str], config: Config, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    """The staff tier seals the tokens it obtains and cannot open them; a worker can."""
    web_config = public_only(env, config).with_overrides(
        zalo_api_base=f"{sim}/_sim", zalo_oauth_base=f"{sim}/_sim"
    )
    assert web_config.secrets.relay_private is None
    web = create_app(web_config)
    try:
        admin = make_admin(web, runtime)
        flow = consent(admin, COMMUNE_OA)
        assert admin.get(flow.callback).status_code == 200
        oa = oa_row(runtime, COMMUNE_OA)
        assert oa is not None
        with pytest.raises(MissingSecret):
            open_tokens(oa, web_config.secrets.relay_key)
        pair = open_tokens(oa, runtime.config.secrets.relay_key)
        assert pair is not None and pair.access_token
    finally:
        install(runtime)
