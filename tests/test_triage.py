"""The triage UI through its forms: login, inbox, tip page, actions, and who may see what."""

from __future__ import annotations

import base64
import json
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import WrongSecret, keyed_digest, unwrap_from_session
from tests.conftest import OFFICER_PASSWORD, Clock, expand
from tests.test_end_to_end import redis_dump
from tests.triage_helpers import approve_all, csrf_from, login, post_form, totp_code
from tests.zalo_events import event, signed_headers
from tipline.config import Config
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import AuditEvent, Message, Officer, Tip
from tipline.runtime import Runtime
from triage.auth import open_enrolment_cookie

TEXT = "Có người tàng trữ ma túy ở nhà số 5 hẻm 12 <script>alert(1)</script>"
KNIFE_FIGHT = "Hai nhóm thanh niên đánh nhau bằng dao ở đầu hẻm 12, nhiều người bị thương"


@pytest.fixture
def tip_id(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> str:
    """A tip sent to the commune's OA and dispatched to Lương Thế Trân."""
    raw = event(text=TEXT, msg_id="ui-1")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(public_id) == "dispatched"
    return public_id


def options(html: str, select: str) -> dict[str, tuple[str, bool]]:
    """The options of the first ``<select>`` after ``select`` (a regex): value → (label,
    selected)."""
    start = re.search(select, html)
    assert start, f"no {select!r} on the page"
    body = html[start.end() :].split("</select>", 1)[0]
    found = re.findall(r'<option( selected)? value="([^"]*)">([^<]*)</option>', body)
    assert found, f"no options after {select!r}"
    return {value: (label, bool(selected)) for selected, value, label in found}


def test_a_knife_fight_is_labelled_filtered_and_preselected_as_violence(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """The classifier's category is the UI's: labelled in both languages, found by the inbox
    filter, pre-selected on the tip page (it once wrote a key the UI did not know)."""
    raw = event(text=KNIFE_FIGHT, msg_id="knife-1")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id, receipt = session.execute(select(Tip.public_id, Tip.receipt_code)).one()
    assert dispatch_tip(public_id) == "dispatched"
    login(client, "canbo", units["totp:canbo"])

    inbox = client.get("/triage/").get_data(as_text=True)
    row = inbox.split(receipt, 1)[1].split("</tr>", 1)[0]
    assert "Bạo lực / gây rối" in row
    violence = [
        value
        for value, (name, _) in options(inbox, r'name="category"[^>]*>').items()
        if name == "Bạo lực / gây rối"
    ]
    assert len(violence) == 1
    filtered = client.get("/triage/", query_string={"category": violence[0]})
    assert receipt in filtered.get_data(as_text=True)

    page = client.get(f"/triage/tips/{public_id}").get_data(as_text=True)
    chosen = options(page, r'id="triage-category"')
    assert [name for name, selected in chosen.values() if selected] == ["Bạo lực / gây rối"]

    client.post("/lang/en", data={"csrf_token": csrf_from(inbox)})
    inbox = client.get("/triage/").get_data(as_text=True)
    assert "Violence / disorder" in inbox.split(receipt, 1)[1].split("</tr>", 1)[0]


def test_pages_need_a_login(client: FlaskClient, tip_id: str) -> None:
    for url in ("/triage/", f"/triage/tips/{tip_id}"):
        response = client.get(url)
        assert response.status_code == 302 and response.location.endswith("/login")


def test_login_needs_password_and_a_fresh_totp_code(
    client: FlaskClient, units: dict[str, str], runtime: Runtime
) -> None:
    secret = units["totp:canbo"]
    assert login(client, "canbo", secret, code="000000").status_code == 401
    assert login(client, "canbo", secret, password="wrong password!").status_code == 401
    assert login(client, "nobody", secret).status_code == 401
    code = totp_code(secret)
    ok = login(client, "canbo", secret, code=code)
    assert ok.status_code == 302 and ok.location.endswith("/triage/")
    session_cookie = client.get_cookie("tipline_session")
    assert session_cookie is not None and client.get_cookie("tipline_unlock") is not None
    assert client.get("/triage/").status_code == 200
    # Logout is a POST with CSRF; the same code cannot be used twice.
    page = client.get("/triage/")
    assert client.post("/logout", data={}).status_code == 400
    client.post("/logout", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert client.get("/triage/").status_code == 302
    assert login(client, "canbo", secret, code=code).status_code == 401
    with runtime.sessions() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert actions.count("login_failed") == 4 and "login" in actions and "logout" in actions


def test_a_fresh_session_id_at_login(client: FlaskClient, units: dict[str, str]) -> None:
    """No session before the login (tests/test_anonymous_visits.py), and a session id planted
    in the browser beforehand (session fixation) is not the one the login gets."""
    client.get("/login")
    assert client.get_cookie("tipline_session") is None
    client.set_cookie("tipline_session", "planted-by-someone-else")
    login(client, "canbo", units["totp:canbo"])
    after = client.get_cookie("tipline_session")
    assert after is not None and after.value != "planted-by-someone-else"


def test_repeated_failures_make_the_next_try_wait(
    client: FlaskClient, units: dict[str, str], clock: Clock
) -> None:
    """A delay for who fails, not a lock for the account (the details: tests/test_login.py)."""
    for _ in range(3):
        assert (
            login(client, "canbo", units["totp:canbo"], password="not the password").status_code
            == 401
        )
    # From here, even with everything right, for a while.
    waiting = login(client, "canbo", units["totp:canbo"])
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "2"
    clock.advance(2)
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302


def test_the_session_key_is_split_between_redis_and_the_cookie(
    client: FlaskClient, units: dict[str, str], runtime: Runtime, tip_id: str
) -> None:
    login(client, "canbo", units["totp:canbo"])
    assert client.get(f"/triage/tips/{tip_id}").status_code == 200
    stored = b"".join(
        runtime.redis.dump(key) or b"" for key in runtime.redis.scan_iter("tipline:session:*")
    )
    assert stored  # a server-side session exists
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        from tipline.keychain import unlock_officer_key

        raw_key = unlock_officer_key(officer, OFFICER_PASSWORD).to_bytes()
    assert raw_key not in stored and raw_key[1:] not in stored
    # Without the cookie half, the session opens nothing: the tip page is refused.
    client.delete_cookie("tipline_unlock")
    assert client.get(f"/triage/tips/{tip_id}").status_code == 403


def test_inbox_lists_metadata_and_the_tip_page_decrypts_and_escapes(
    client: FlaskClient, units: dict[str, str], tip_id: str, runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    inbox = client.get("/triage/").get_data(as_text=True)
    with runtime.sessions() as session:
        receipt = session.scalars(select(Tip.receipt_code)).one()
    assert receipt in inbox and "ma túy" not in inbox  # metadata only
    page = client.get(f"/triage/tips/{tip_id}").get_data(as_text=True)
    assert "tàng trữ ma túy" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "2468458835296197922" not in page
    with runtime.sessions() as session:
        pseudonym = session.scalars(select(Tip)).one().pseudonym
    assert PSEUDONYM.fullmatch(pseudonym) and pseudonym in page
    with runtime.sessions() as session:
        assert session.scalars(select(Tip)).one().first_opened_at is not None
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "tip_open")).one()


# "Nguồn K7Q2-M9XA": 8 characters of Crockford's base32 (no I, L, O, U), 40 bits.
PSEUDONYM = re.compile(r"Nguồn [0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


def test_pseudonyms_are_40_bits_readable_and_derived_from_the_alias_only() -> None:
    """16 bits collided around 300 informants of one OA; 20,000 informants must not."""
    aliases = [keyed_digest(b"alias key", "informant", f"oa\x00user{i}") for i in range(20_000)]
    pseudonyms = [Tip(informant_alias=alias).pseudonym for alias in aliases]
    assert all(PSEUDONYM.fullmatch(p) for p in pseudonyms), pseudonyms[:3]
    assert len(set(pseudonyms)) == len(aliases)
    # The same alias (the same informant) is always called the same, whatever the tip.
    assert Tip(informant_alias=aliases[0]).pseudonym == pseudonyms[0]


def test_security_headers(client: FlaskClient, units: dict[str, str]) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Secure" not in (response.headers.get("Set-Cookie") or "")  # plain HTTP demo


def test_actions_reply_note_status_assign_transfer(
    client: FlaskClient, units: dict[str, str], tip_id: str, runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    assert (
        post_form(
            client, url, f"{url}/reply", {"text": "Bạn có thể cho biết thời gian không?"}
        ).status_code
        == 302
    )
    assert post_form(client, url, f"{url}/note", {"text": "Đã cử tổ xác minh"}).status_code == 302
    assert post_form(client, url, f"{url}/status", {"value": "verifying"}).status_code == 302
    assert post_form(client, url, f"{url}/priority", {"value": "high"}).status_code == 302
    assert post_form(client, url, f"{url}/category", {"value": "ma_tuy"}).status_code == 302
    with runtime.sessions() as session:
        me = session.scalars(select(Officer.public_id).where(Officer.username == "canbo")).one()
    assert post_form(client, url, f"{url}/assign", {"value": me}).status_code == 302
    # Bad input: a status that does not exist, and a post without CSRF.
    assert post_form(client, url, f"{url}/status", {"value": "gone"}).status_code == 400
    assert client.post(f"{url}/status", data={"value": "spam"}).status_code == 400
    page = client.get(url).get_data(as_text=True)
    assert "Bạn có thể cho biết thời gian không?" in page and "Đã cử tổ xác minh" in page
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        assert (tip.status, tip.priority, tip.category) == ("verifying", "high", "ma_tuy")
        assert tip.assignee is not None and tip.assignee.username == "canbo"
        reply = session.scalars(
            select(Message).where(Message.direction == "out", Message.author_id.is_not(None))
        ).one()
        assert reply.delivery == "queued"
        target = session.scalars(select(Officer.unit_id).where(Officer.username == "canbo2")).one()
        from tipline.models import Unit

        target_public = session.get_one(Unit, target).public_id
    # Transfer to Cái Nước: this officer loses the tip, the other commune's officer gains it.
    assert (
        post_form(
            client, url, f"{url}/transfer", {"value": target_public, "confirm": "1"}
        ).status_code
        == 302
    )
    assert client.get(url).status_code == 403
    other = client.application.test_client()
    login(other, "canbo2", units["totp:canbo2"])
    assert other.get(url).status_code == 200
    with runtime.sessions() as session:
        got = [
            e.action
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.object_id == tip_id).order_by(AuditEvent.seq)
            )
        ]
    assert got[-1] == "tip_open" and "transfer" in got and "reply_queued" in got


def test_other_units_auditors_and_commanders(
    client: FlaskClient, units: dict[str, str], tip_id: str
) -> None:
    other = client.application.test_client()
    login(other, "canbo2", units["totp:canbo2"])
    assert tip_id not in other.get("/triage/").get_data(as_text=True)
    assert other.get(f"/triage/tips/{tip_id}").status_code == 403
    auditor = client.application.test_client()
    login(auditor, "thanhtra", units["totp:thanhtra"])
    assert auditor.get(f"/triage/tips/{tip_id}").status_code == 403
    commander = client.application.test_client()
    login(commander, "chihuy", units["totp:chihuy"])
    assert tip_id in commander.get("/triage/").get_data(as_text=True)
    assert commander.get(f"/triage/tips/{tip_id}").status_code == 200
    assert commander.get("/triage/tips/doesnotexist").status_code == 404


def test_escalate_to_the_parent_unit(
    client: FlaskClient, units: dict[str, str], tip_id: str, runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    assert post_form(client, url, f"{url}/escalate", {"confirm": "1"}).status_code == 302
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        # The tip sits in the province now: its SLA reminders start again from there.
        assert tip.unit is not None and tip.unit.code == "v2025:96" and tip.escalation_level == 0


def test_after_a_hand_escalation_the_next_reminder_goes_one_level_up_not_two(
    client: FlaskClient, units: dict[str, str], runtime: Runtime, config: Config
) -> None:
    """A hand escalation moved the tip up and also counted a reminder level, so the next SLA
    reminder skipped the new unit's parent: with a post under the commune, a tip escalated
    by hand from the post to the commune had its next reminder aimed two levels above the
    commune, past the province, and none was sent."""
    from tipline.officers import add_officer, holder_keys
    from tipline.routing.escalation import escalate
    from tipline.units import add_unit, set_oa

    post_oa = "3886132808788100001"
    with runtime.sessions() as session, session.begin():
        add_unit(
            session,
            code="tl:don-1",
            name="Đồn Công an số 1",
            level="other",
            parent_code="v2025:32134",
        )
        set_oa(session, "tl:don-1", post_oa)
        grantor, grantor_keys = holder_keys(session, "chihuy", OFFICER_PASSWORD)
        secret = add_officer(
            session,
            username="canbo3",
            display_name="Canbo3",
            role="officer",
            unit_code="tl:don-1",
            password=OFFICER_PASSWORD,
            cost=config.kdf_cost,
            totp_confirmed=True,
            grantor=grantor,
            grantor_keys=grantor_keys,
        ).totp_secret
    raw = event(text=TEXT, msg_id="post-1", oa=post_oa)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(public_id) == "dispatched"
    login(client, "canbo3", secret)
    url = f"/triage/tips/{public_id}"
    assert post_form(client, url, f"{url}/escalate", {"confirm": "1"}).status_code == 302
    with runtime.sessions() as session, session.begin():
        tip = session.scalars(select(Tip)).one()
        assert tip.unit is not None and tip.unit.code == "v2025:32134"
        reminded = escalate(session, tip)
        assert reminded is not None and reminded.code == "v2025:96"


def test_totp_enrolment_by_qr_at_first_login(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="moi",
            display_name="Mới",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
        )
    first = login(client, "moi", new.totp_secret, code="")
    assert first.status_code == 302 and first.location.endswith("/login/totp-setup")
    page = client.get("/login/totp-setup").get_data(as_text=True)
    assert "data:image/svg+xml;base64," in page and new.totp_secret in page
    wrong = client.post("/login/totp-setup", data={"csrf_token": csrf_from(page), "code": "000000"})
    assert wrong.status_code == 200
    done = client.post(
        "/login/totp-setup",
        data={"csrf_token": csrf_from(page), "code": totp_code(new.totp_secret)},
    )
    assert done.status_code == 302 and client.get("/triage/").status_code == 200


def _blobs(dump: bytes) -> set[bytes]:
    """Every byte string Redis holds, raw and base64-decoded (either alphabet), for a search.

    A run of base64 characters may carry a byte or two of its neighbours (a serialiser's
    length byte can be a letter): each run is also decoded without up to 3 characters at
    either end.
    """
    found = {dump}
    for run in re.findall(rb"[A-Za-z0-9+/_=-]{16,}", dump):
        for start in range(4):
            for end in range(4):
                text = run[start : len(run) - end].rstrip(b"=")
                for decode in (base64.b64decode, base64.urlsafe_b64decode):
                    try:
                        found.add(decode(text + b"=" * (-len(text) % 4)))
                    except ValueError:
                        pass
    return found


def test_an_enrolling_officers_key_does_not_open_from_redis_alone(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """Between the password and the first TOTP code the officer's private key waits in the
    server session, wrapped under a secret that only the browser's cookie carries: nothing in
    Redis (every key and value, as stored or base64-decoded) opens the wrap."""
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="moi",
            display_name="Mới",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
        )
        officer_id = session.scalars(
            select(Officer.public_id).where(Officer.username == "moi")
        ).one()
    first = login(client, "moi", new.totp_secret, code="")
    assert first.status_code == 302 and first.location.endswith("/login/totp-setup")
    enrol = client.get_cookie("tipline_enrol", path="/login")
    assert enrol is not None and enrol.http_only and enrol.same_site == "Lax"

    blobs = _blobs(redis_dump(runtime.redis))
    wraps = [blob for blob in blobs if 40 <= len(blob) <= 200]
    candidates = {blob[i : i + 32] for blob in blobs for i in range(len(blob) - 31)}

    def opens(wrap: bytes, secret: bytes) -> bool:
        try:
            unwrap_from_session(wrap, secret, binding=officer_id)
        except WrongSecret:
            return False
        return True

    # The wrap is in Redis, and the cookie's secret opens it (so the search below can find).
    secret = base64.urlsafe_b64decode(open_enrolment_cookie(runtime, enrol.value, officer_id))
    assert [wrap for wrap in wraps if opens(wrap, secret)]
    assert not [1 for wrap in wraps for candidate in candidates if opens(wrap, candidate)]

    page = client.get("/login/totp-setup").get_data(as_text=True)
    assert new.totp_secret in page
    done = client.post(
        "/login/totp-setup",
        data={"csrf_token": csrf_from(page), "code": totp_code(new.totp_secret)},
    )
    assert done.status_code == 302 and client.get("/triage/").status_code == 200
    assert client.get_cookie("tipline_enrol", path="/login") is None  # gone with the step


def test_enrolment_without_its_cookie_starts_again_at_the_login(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="moi",
            display_name="Mới",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
        )
    assert login(client, "moi", new.totp_secret, code="").status_code == 302
    client.delete_cookie("tipline_enrol", path="/login")
    again = client.get("/login/totp-setup")
    assert again.status_code == 302 and again.location.endswith("/login")
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "moi")).one()
        assert officer.totp_confirmed_at is None


def test_recovery_code_resets_the_password_and_keeps_access(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="quenmk",
            display_name="Quên",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    # The unit already has key holders, so the grant waits for one of them to approve it.
    holder = client.application.test_client()
    login(holder, "canbo", units["totp:canbo"])
    assert len(approve_all(holder)) == 1
    page = client.get("/login/recover").get_data(as_text=True)
    response = client.post(
        "/login/recover",
        data={
            "csrf_token": csrf_from(page),
            "username": "quenmk",
            "recovery_code": new.recovery_code.lower(),
            "code": totp_code(new.totp_secret),
            "new_password": "mat khau moi rat dai",
        },
    )
    assert response.status_code == 200
    fresh_code = response.get_data(as_text=True).split('id="recovery-code">')[1].split("<")[0]
    assert fresh_code != new.recovery_code
    client2 = client.application.test_client()
    assert (
        login(
            client2,
            "quenmk",
            new.totp_secret,
            password="mat khau moi rat dai",
            code=totp_code(new.totp_secret, 1),
        ).status_code
        == 302
    )
    assert client2.get(f"/triage/tips/{tip_id}").status_code == 200
    # The old recovery code is spent.
    page = client.get("/login/recover").get_data(as_text=True)
    again = client.post(
        "/login/recover",
        data={
            "csrf_token": csrf_from(page),
            "username": "quenmk",
            "recovery_code": new.recovery_code,
            "code": totp_code(new.totp_secret, -1),
            "new_password": "mot mat khau khac nua",
        },
    )
    assert again.status_code == 401


def test_language_switch(client: FlaskClient, units: dict[str, str]) -> None:
    page = client.get("/login")
    assert "Đăng nhập" in page.get_data(as_text=True)
    client.post("/lang/en", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert "Log in" in client.get("/login").get_data(as_text=True)


def test_json_is_not_mangled(client: FlaskClient) -> None:
    assert json.loads(client.get("/healthz").get_data())["database"] == "ok"


def test_behind_tls_cookies_are_secure_and_hsts_is_sent(
    config, runtime: Runtime, units: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    from tipline.app import create_app

    app = create_app(config.with_overrides(behind_tls=True))
    client = app.test_client()
    https = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "10.20.30.40",
        "Referer": "https://localhost/login",
    }
    page = client.get("/login", headers=https, base_url="https://localhost")
    assert "max-age" in page.headers["Strict-Transport-Security"]
    response = client.post(
        "/login",
        headers=https,
        base_url="https://localhost",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "username": "canbo",
            "password": OFFICER_PASSWORD,
            "code": totp_code(units["totp:canbo"]),
        },
    )
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies)
    with runtime.sessions() as session:
        login_event = session.scalars(select(AuditEvent).where(AuditEvent.action == "login")).one()
    assert login_event.client_address == "10.20.30.40"
