"""The anonymous web form (/bao-tin) and follow-up page (/tra-cuu) under attack, text only.

Proof-of-work games, units and locations that are not, markup reflected when a form is shown
again, wrong passphrases, answers too long or on a closed report: each gets a clear 4xx (or
the page's own refusal notice) and stores nothing; what officers and informants read of each
other's words is escaped on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from werkzeug.test import TestResponse

from keys import solve_work, work_is_valid
from tests.conftest import expand
from tests.hostile.routes import Call, send
from tests.hostile.snapshot import AUDIT_TABLES, assert_unchanged, snapshot
from tests.hostile.world import UNIT_A, World
from tests.test_web_intake import work_for
from tests.triage_helpers import csrf_from
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import InboundEvent, Tip

BITS = 6
MARKUP = '"><img src=x onerror=alert("web")>'


@pytest.fixture(autouse=True)
def low_difficulty(world: World) -> None:
    world.runtime.config = world.runtime.config.with_overrides(pow_bits=BITS)


def form_page(client: FlaskClient) -> tuple[str, str]:
    """(challenge, CSRF token) of a fresh /bao-tin page."""
    html = client.get("/bao-tin").get_data(as_text=True)
    challenge = re.search(r'data-challenge="([^"]+)"', html)
    assert challenge
    return challenge.group(1), csrf_from(html)


def unsolved(challenge: str) -> str:
    return next(str(n) for n in range(1000) if not work_is_valid(challenge, str(n), BITS))


def submit(client: FlaskClient, fields: dict[str, str]) -> TestResponse:
    return client.post("/bao-tin", data=fields)


def valid(world: World, client: FlaskClient, **changes: str) -> dict[str, str]:
    challenge, token = form_page(client)
    fields = {
        "csrf_token": token,
        "challenge": challenge,
        "unit": world.units[UNIT_A],
        "text": "Có người buôn bán hàng cấm ở chợ",
        "nonce": solve_work(challenge, BITS),
    }
    return fields | changes


def foreign_nonce(world: World, client: FlaskClient) -> dict[str, str]:
    """A nonce that solves another browser's challenge and not this one's."""
    theirs = form_page(world.fresh_client())[0]
    ours, token = form_page(client)
    nonce = next(
        str(n)
        for n in range(100_000)
        if work_is_valid(theirs, str(n), BITS) and not work_is_valid(ours, str(n), BITS)
    )
    return {
        "csrf_token": token,
        "challenge": ours,
        "unit": world.units[UNIT_A],
        "text": "Có người buôn bán hàng cấm ở chợ",
        "nonce": nonce,
    }


def not_solved(fields: dict[str, str]) -> dict[str, str]:
    return fields | {"nonce": unsolved(fields["challenge"])}


def foreign_challenge(world: World, client: FlaskClient) -> dict[str, str]:
    """Another browser's challenge, solved: challenges are bound to the browser's cookie."""
    theirs = form_page(world.fresh_client())[0]
    return valid(world, client) | {"challenge": theirs, "nonce": solve_work(theirs, BITS)}


REFUSED: dict[str, Callable[[World, FlaskClient], dict[str, str]]] = {
    "no nonce": lambda w, c: valid(w, c) | {"nonce": ""},
    "no challenge": lambda w, c: valid(w, c) | {"challenge": ""},
    "another browser's challenge, solved": lambda w, c: foreign_challenge(w, c),
    "a nonce that does not solve": lambda w, c: not_solved(valid(w, c)),
    "a nonce solved for another browser's challenge": lambda w, c: foreign_nonce(w, c),
    "a nonce of 100,000 digits": lambda w, c: valid(w, c) | {"nonce": "7" * 100_000},
    "no unit": lambda w, c: valid(w, c, unit=""),
    "a unit nobody has": lambda w, c: valid(w, c, unit="0000000000000000"),
    "a unit code instead of its id": lambda w, c: valid(w, c, unit=UNIT_A),
    "only spaces": lambda w, c: valid(w, c, text=" \t\n "),
    "latitude 91": lambda w, c: valid(w, c, lat="91", lon="105"),
    "latitude NaN": lambda w, c: valid(w, c, lat="NaN", lon="105"),
    "longitude infinite": lambda w, c: valid(w, c, lat="9", lon="inf"),
    "latitude 1e309": lambda w, c: valid(w, c, lat="1e309", lon="105"),
    "latitude without longitude": lambda w, c: valid(w, c, lat="9.1"),
    "markup in the location": lambda w, c: valid(w, c, lat=MARKUP, lon=MARKUP),
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_report_is_400_stores_nothing_and_reflects_escaped(
    world: World, make: Callable[[World, FlaskClient], dict[str, str]]
) -> None:
    client = world.client("anonymous")
    fields = make(world, client)
    if fields["text"].strip():
        fields["text"] += MARKUP  # shown again in the textarea
    before = snapshot(world.runtime)
    response = submit(client, fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert MARKUP not in html
    if MARKUP in fields["text"] + fields.get("lat", ""):
        assert str(escape(MARKUP)) in html
    assert 'role="alert"' in html  # the reason is shown
    assert_unchanged(world.runtime, before)


def test_a_solved_challenge_is_good_once(world: World) -> None:
    client = world.client("anonymous")
    fields = valid(world, client)
    assert submit(client, fields).status_code == 200
    before = snapshot(world.runtime)
    assert submit(client, fields).status_code == 400  # the same nonce again
    assert_unchanged(world.runtime, before)


def test_the_unit_in_a_poster_link_is_only_preselected_never_shown(world: World) -> None:
    client = world.client("anonymous")
    before = snapshot(world.runtime)
    for value in (MARKUP, "' OR '1'='1", world.units[UNIT_A] + '" autofocus onfocus="alert(1)'):
        response = client.get("/bao-tin", query_string={"don-vi": value})
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert value not in html and "onfocus" not in html and " selected" not in html
    assert_unchanged(world.runtime, before)


# --- /tra-cuu --------------------------------------------------------------------------------


def web_tip(world: World) -> tuple[str, str, str]:
    """A report sent through the form, expanded and dispatched: (code, passphrase, public id)."""
    client = world.fresh_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    response = submit(client, valid(world, client, text="Tin báo qua web " + MARKUP))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    code = re.search(r'id="receipt-code">([^<]+)<', html)
    passphrase = re.search(r'id="passphrase">([^<]+)<', html)
    assert code and passphrase
    assert expand(world.runtime) == 1
    with world.runtime.sessions() as db:
        public_id = db.scalars(
            select(InboundEvent.tip_public_id).order_by(InboundEvent.id.desc()).limit(1)
        ).one()
    assert public_id is not None and dispatch_tip(public_id) == "dispatched"
    return code.group(1), passphrase.group(1), public_id


def look_up(
    client: FlaskClient,
    code: str,
    passphrase: str,
    answer: str | None = None,
    *,
    page: str | None = None,
    short_of: int | None = None,
) -> TestResponse:
    """A post from /tra-cuu (or ``page``) with its work done (tests.test_web_intake)."""
    page = page or client.get("/tra-cuu").get_data(as_text=True)
    fields = {"csrf_token": csrf_from(page), **work_for(page, short_of=short_of)}
    fields |= {"code": code, "passphrase": passphrase}
    if answer is not None:
        fields["answer"] = answer
    return client.post("/tra-cuu", data=fields)


def test_wrong_passphrases_are_403_and_make_the_work_longer_never_lock_the_code(
    world: World,
) -> None:
    code, passphrase, _tip = web_tip(world)
    client = world.client("anonymous")
    before = snapshot(world.runtime)
    for wrong in ("sai", passphrase + " x", passphrase.upper() + " ba", MARKUP, ""):
        response = look_up(client, code, wrong, answer="Thêm thông tin")
        assert response.status_code == 403
        assert MARKUP not in response.get_data(as_text=True)
    # Five failures: the right passphrase with only the first work done is refused and adds
    # nothing; it used to be refused outright for a while (429), whatever the work.
    informant = world.fresh_client()
    informant.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    short = look_up(informant, code, passphrase, answer="Thêm thông tin", short_of=BITS + 5)
    assert short.status_code == 403
    assert_unchanged(world.runtime, before)
    # With the longer work the page asks for, it gets in and the answer is added.
    done = look_up(
        informant, code, passphrase, answer="Thêm thông tin", page=short.get_data(as_text=True)
    )
    assert done.status_code == 200 and "Thêm thông tin" in done.get_data(as_text=True)


def test_markup_in_a_code_is_reflected_escaped(world: World) -> None:
    client = world.client("anonymous")
    before = snapshot(world.runtime)
    response = look_up(client, MARKUP, "a b c")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert MARKUP not in html and str(escape(MARKUP)) in html
    assert_unchanged(world.runtime, before)


def test_an_answer_too_long_or_on_a_closed_report_stores_nothing(world: World) -> None:
    code, passphrase, tip = web_tip(world)
    client = world.client("anonymous")
    before = snapshot(world.runtime)
    response = look_up(client, code, passphrase, answer="a" * 20_001)
    assert response.status_code == 200 and 'id="notice"' in response.get_data(as_text=True)
    assert_unchanged(world.runtime, before)
    canbo = world.client("canbo")
    closed = send(
        canbo,
        Call("POST", f"/triage/tips/{tip}/status", form={"value": "resolved"}),
        world.token(canbo),
    )
    assert closed.status_code == 302
    before = snapshot(world.runtime)
    response = look_up(client, code, passphrase, answer="Còn một chuyện nữa")
    assert response.status_code == 200 and 'id="notice"' in response.get_data(as_text=True)
    assert_unchanged(world.runtime, before)


def test_markup_between_informant_and_officer_is_escaped_both_ways(world: World) -> None:
    code, passphrase, tip = web_tip(world)
    informant = world.client("anonymous")
    answer = '<script>alert("answer")</script>'
    assert look_up(informant, code, passphrase, answer=answer).status_code == 200
    canbo = world.client("canbo")
    officer_reply = "</li><img src=x onerror=alert('officer-reply')>"
    replied = send(
        canbo,
        Call("POST", f"/triage/tips/{tip}/reply", form={"text": officer_reply}),
        world.token(canbo),
    )
    assert replied.status_code == 302
    officer_page = canbo.get(f"/triage/tips/{tip}").get_data(as_text=True)
    for text in (MARKUP, answer):
        assert text not in officer_page and str(escape(text)) in officer_page
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    informant_page = look_up(informant, code, passphrase).get_data(as_text=True)
    for text in (MARKUP, answer, officer_reply):
        assert text not in informant_page and str(escape(text)) in informant_page
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)
    with world.runtime.sessions() as db:
        assert db.scalars(select(Tip.channel).where(Tip.public_id == tip)).one() == "web"
