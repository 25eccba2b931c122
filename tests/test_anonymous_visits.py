"""Anonymous visitors get no server-side session, however far they go.

Opening /bao-tin, /tra-cuu or /login stores nothing in Redis (no ``tipline:session:*`` key)
and sets no session cookie; an informant reports, follows up and switches language without
ever getting one. What a session used to carry travels in the page and a cookie instead:

- the web form's proof-of-work challenge is a token signed with the app's secret key, bound
  to the browser, good for a limited time and once (spent challenges are remembered in Redis,
  only after a successful report, as long as a challenge lives);
- the anti-CSRF token of every form an anonymous visitor posts is signed and bound to a
  random value in a cookie of that browser (HttpOnly, SameSite, gone when the browser closes),
  which the server does not keep.

A session starts with a successful login (tests/hostile keeps proving every form refuses a
missing, wrong, foreign or misplaced CSRF token).
"""

from __future__ import annotations

import re
import time

import pytest
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from keys import solve_work
from tests.conftest import OFFICER_PASSWORD, expand
from tests.test_web_intake import commune, look_up, receipt_of
from tests.triage_helpers import csrf_from, login, totp_code
from tipline.models import InboundEvent
from tipline.public.web_form import CHALLENGE_LIFE, challenge_token
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")
BITS = 4
ANONYMOUS_PAGES = ("/bao-tin", "/tra-cuu", "/login", "/login/recover")


@pytest.fixture(autouse=True)
def low_difficulty(runtime: Runtime) -> None:
    runtime.config = runtime.config.with_overrides(pow_bits=BITS)


def session_keys(redis: Redis) -> list[bytes]:
    return list(redis.scan_iter("tipline:session:*"))


def spent_keys(redis: Redis) -> list[bytes]:
    return list(redis.scan_iter("tipline:pow-spent:*"))


def set_cookies(response: TestResponse) -> dict[str, str]:
    return {
        header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")
    }


def events(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return db.scalar(select(func.count(InboundEvent.id))) or 0


def test_anonymous_pages_make_no_server_session_and_set_no_session_cookie(
    client: FlaskClient, redis: Redis
) -> None:
    for page in ANONYMOUS_PAGES:
        browser = client.application.test_client()
        response = browser.get(page)
        assert response.status_code == 200, page
        cookies = set_cookies(response)
        # Only the anti-CSRF cookie: random, HttpOnly, SameSite, no lifetime of its own.
        assert list(cookies) == ["tipline_csrf"], (page, cookies)
        flags = cookies["tipline_csrf"]
        assert "HttpOnly" in flags and "SameSite=Lax" in flags, flags
        assert "Expires" not in flags and "Max-Age" not in flags, flags
        # A second page in the same browser sets nothing more.
        assert set_cookies(browser.get(page)) == {}, page
    assert session_keys(redis) == []


def test_an_informant_reports_follows_up_and_switches_language_without_a_session(
    client: FlaskClient, runtime: Runtime, redis: Redis
) -> None:
    page = client.get("/bao-tin").get_data(as_text=True)
    switched = client.post("/lang/en", data={"csrf_token": csrf_from(page)})
    assert switched.status_code == 302 and "tipline_lang" in set_cookies(switched)
    page = client.get("/bao-tin").get_data(as_text=True)
    assert "Report to the police" in page
    sent = client.post("/bao-tin", data=form_fields(runtime, page))
    assert sent.status_code == 200
    code, passphrase = receipt_of(sent)
    assert expand(runtime) == 1
    assert look_up(client, code, passphrase).status_code == 200
    assert session_keys(redis) == []
    assert client.get_cookie("tipline_session") is None


def test_a_session_starts_with_a_successful_login_only(
    client: FlaskClient, redis: Redis, units: dict[str, str]
) -> None:
    refused = login(client, "canbo", units["totp:canbo"], password="wrong password!")
    assert refused.status_code == 401 and "tipline_session" not in set_cookies(refused)
    assert 'role="status"' in refused.get_data(as_text=True)  # the reason is still shown
    assert session_keys(redis) == []
    done = login(client, "canbo", units["totp:canbo"])
    assert done.status_code == 302 and "tipline_session" in set_cookies(done)
    assert len(session_keys(redis)) == 1


# --- the proof-of-work challenge --------------------------------------------------------------


def form_fields(runtime: Runtime, page: str, **changes: str) -> dict[str, str]:
    """What the browser posts for a /bao-tin page: its hidden fields, the work, a report."""
    challenge = re.search(r'name="challenge" value="([^"]+)"', page)
    assert challenge and f'data-challenge="{challenge.group(1)}"' in page
    fields = {
        "csrf_token": csrf_from(page),
        "challenge": challenge.group(1),
        "nonce": solve_work(challenge.group(1), BITS),
        "unit": commune(runtime),
        "text": "Có người buôn bán ma túy ở chợ",
    }
    return fields | changes


def refused(client: FlaskClient, runtime: Runtime, fields: dict[str, str]) -> None:
    stored = events(runtime)
    response = client.post("/bao-tin", data=fields)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert events(runtime) == stored


def test_a_challenge_is_good_once_and_only_a_success_is_remembered(
    client: FlaskClient, runtime: Runtime, redis: Redis
) -> None:
    fields = form_fields(runtime, client.get("/bao-tin").get_data(as_text=True))
    refused(client, runtime, fields | {"text": " "})  # refused for the text: not spent
    assert spent_keys(redis) == []
    assert client.post("/bao-tin", data=fields).status_code == 200
    (spent,) = spent_keys(redis)
    assert 0 < redis.ttl(spent) <= CHALLENGE_LIFE
    refused(client, runtime, fields)  # the same challenge and work again
    refused(client, runtime, fields | {"text": "Một tin khác"})


def test_a_forged_foreign_or_expired_challenge_is_refused(
    client: FlaskClient, runtime: Runtime
) -> None:
    page = client.get("/bao-tin").get_data(as_text=True)
    good = form_fields(runtime, page)
    payload, issued, mac = good["challenge"].split(".")
    other = "Z" if payload[0] != "Z" else "Y"
    forged = {
        "payload changed": f"{other}{payload[1:]}.{issued}.{mac}",
        "signature changed": f"{payload}.{issued}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",
        "issued later": f"{payload}.{int(issued, 16) + 60:x}.{mac}",
        "no signature": payload,
        "empty": "",
    }
    for challenge in forged.values():
        solved = {"challenge": challenge, "nonce": solve_work(challenge, BITS)}
        refused(client, runtime, good | solved)
    # Another browser's challenge, solved: it is bound to that browser's cookie.
    elsewhere = client.application.test_client()
    theirs = form_fields(runtime, elsewhere.get("/bao-tin").get_data(as_text=True))
    refused(client, runtime, good | {k: theirs[k] for k in ("challenge", "nonce")})
    # A challenge this browser was given, but longer ago than a challenge lives.
    browser = client.get_cookie("tipline_csrf")
    assert browser is not None
    with client.application.app_context():
        old = challenge_token(browser.value, issued=int(time.time()) - CHALLENGE_LIFE - 1)
    refused(client, runtime, good | {"challenge": old, "nonce": solve_work(old, BITS)})
    # The page's own challenge still works: none of the above spent it.
    assert client.post("/bao-tin", data=good).status_code == 200


# --- anti-CSRF without a session -------------------------------------------------------------


def test_public_forms_take_only_this_browsers_token(
    client: FlaskClient, runtime: Runtime, redis: Redis, units: dict[str, str]
) -> None:
    """Each post is complete and right but for its token: missing, another browser's, forged
    or in the query string, it is 400 and changes nothing; with its own, it goes through."""
    elsewhere = client.application.test_client()
    foreign = csrf_from(elsewhere.get("/tra-cuu").get_data(as_text=True))
    page = client.get("/bao-tin").get_data(as_text=True)
    own = csrf_from(page)
    report = form_fields(runtime, page)
    secret = units["totp:canbo"]
    posts = {
        "/bao-tin": (report, 200),
        "/tra-cuu": ({"code": "TL-0000-0000", "passphrase": "sai mat khau"}, 403),
        "/lang/en": ({}, 302),
        "/login": ({"username": "canbo", "password": OFFICER_PASSWORD, "code": ""}, 302),
    }
    for path, (fields, status) in posts.items():
        if path == "/login":
            fields = fields | {"code": totp_code(secret)}
        bare = {k: v for k, v in fields.items() if k != "csrf_token"}
        for token in (None, "", foreign, own[:-2] + ("AA" if own[-2:] != "AA" else "BB")):
            stored = events(runtime)
            data = bare if token is None else bare | {"csrf_token": token}
            response = client.post(path, data=data)
            assert response.status_code == 400, (path, token)
            assert events(runtime) == stored and session_keys(redis) == []
            assert "tipline_lang" not in set_cookies(response)
        assert client.post(f"{path}?csrf_token={own}", data=bare).status_code == 400
        assert client.post(path, data=bare | {"csrf_token": own}).status_code == status, path
