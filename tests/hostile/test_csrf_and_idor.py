"""Forms posted without their CSRF token, and objects of another unit asked for by URL.

CSRF: every form post of the app (from the authorisation matrix's rows, so a new form is
covered as soon as it has a row), sent by the role allowed to send it, with the token missing,
wrong, taken from another session, or put in the query string: 400, and nothing stored changes
(the audit trail included: a refused post is not an action).

IDOR: officers of unit B, the auditor and the admin name unit A's tip, its attachment, its
unit, its officers, by URL or in a form; each gets 403 (known object, not theirs) or 404 and
nothing else changes. A refused access to an existing tip (or its attachment, or an action on
it) is itself audited: exactly one "tip_open" event, outcome "denied", by the person who tried;
any other refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from tests.hostile.routes import REQUESTS, TO_LOGIN, Call, Targets, send
from tests.hostile.snapshot import AUDIT_TABLES, assert_unchanged, snapshot
from tests.hostile.world import NOTE_A, REPLY_A, TEXT_A, UNIT_A, UNIT_B, World
from tests.test_authorization_matrix import EXPECTED
from tipline.models import AuditEvent

FORM_POSTS = sorted(
    key
    for key in EXPECTED
    if key.startswith("POST ") and not key.startswith(("POST /zalo/", "POST /_sim/"))
)
# Rows where nobody gets further than the login page: the one the form is for.
SENDER = {"POST /logout": "canbo", "POST /login/totp-setup": "anonymous"}


def sender(key: str) -> str:
    """The role the form is for: the first one the matrix lets through."""
    if key in SENDER:
        return SENDER[key]
    if len(set(EXPECTED[key].values())) == 1:
        return "anonymous"  # a public form: the same answer for everyone
    for role in ("canbo", "chihuy", "thanhtra", "admin", "anonymous"):
        if EXPECTED[key][role] not in ("403", TO_LOGIN):
            return role
    raise AssertionError(f"nobody may post {key}")


def other_sessions_token(world: World) -> str:
    return world.token(world.fresh_client())


TOKENS: dict[str, Callable[[World, FlaskClient], str | None]] = {
    "missing": lambda w, c: None,
    "wrong": lambda w, c: "IjEyMzQ1Njc4OTAi.Zz9Xyw.forged-signature-value",
    "another session's": lambda w, c: other_sessions_token(w),
    "empty": lambda w, c: "",
}


@pytest.mark.parametrize("key", FORM_POSTS)
def test_a_form_post_without_its_csrf_token_is_400_and_changes_nothing(
    world: World, key: str
) -> None:
    role = sender(key)
    client = world.client(role)
    for variant, token_for in TOKENS.items():
        call = REQUESTS[key](Targets(world, attachment="", sim_media=""))
        token = token_for(world, client)
        before = snapshot(world.runtime)
        response = send(client, call, token)
        assert response.status_code == 400, (variant, response.status_code)
        assert_unchanged(world.runtime, before)
    # The valid token, but in the query string, where Flask-WTF does not look.
    call = REQUESTS[key](Targets(world, attachment="", sim_media=""))
    before = snapshot(world.runtime)
    call.path += ("&" if "?" in call.path else "?") + "csrf_token=" + world.token(client)
    assert send(client, call, None).status_code == 400
    assert_unchanged(world.runtime, before)
    # The session is untouched: still logged in (or not), still in Vietnamese.
    page = world.client(role).get("/tra-cuu").get_data(as_text=True)
    assert "Tra cứu" in page
    if role != "anonymous":
        assert 'id="logout"' in page


# --- IDOR ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    role: str
    build: Callable[[World, str], Call]  # (world, A's attachment id) → the request
    status: int


def tip_a(w: World, _a: str) -> str:
    return f"/triage/tips/{w.tip_a}"


def post_on_a(action: str, **form: str) -> Callable[[World, str], Call]:
    return lambda w, a: Call("POST", f"{tip_a(w, a)}/{action}", form=dict(form))


A_ACTIONS = {
    "status": {"value": "resolved"},
    "priority": {"value": "urgent"},
    "category": {"value": "cuop"},
    "note": {"text": "Ghi chú của đơn vị khác"},
    "reply": {"text": "Tin nhắn từ đơn vị khác"},
    "escalate": {},
    "duplicate": {"receipt_code": "TL-0000-0000"},
}

ATTEMPTS: dict[str, Attempt] = {
    "B's officer opens A's tip": Attempt("canbo2", lambda w, a: Call("GET", tip_a(w, a)), 403),
    "B's officer downloads A's attachment": Attempt(
        "canbo2", lambda w, a: Call("GET", f"{tip_a(w, a)}/attachments/{a}"), 403
    ),
    "B's officer downloads A's attachment through B's tip": Attempt(
        "canbo2", lambda w, a: Call("GET", f"/triage/tips/{w.tip_b}/attachments/{a}"), 404
    ),
    "B's officer assigns A's tip to themself": Attempt(
        "canbo2", lambda w, a: post_on_a("assign", value=w.officers["canbo2"])(w, a), 403
    ),
    "B's officer transfers A's tip to B": Attempt(
        "canbo2", lambda w, a: post_on_a("transfer", value=w.units[UNIT_B])(w, a), 403
    ),
    **{
        f"B's officer posts {name} on A's tip": Attempt("canbo2", post_on_a(name, **form), 403)
        for name, form in A_ACTIONS.items()
    },
    "B's officer prints A's poster": Attempt(
        "canbo2", lambda w, a: Call("GET", f"/triage/units/{w.units[UNIT_A]}/poster"), 403
    ),
    "B's officer fetches A's poster QR code": Attempt(
        "canbo2", lambda w, a: Call("GET", f"/triage/units/{w.units[UNIT_A]}/poster.png"), 403
    ),
    "B's officer assigns B's tip to A's officer": Attempt(
        "canbo2",
        lambda w, a: Call(
            "POST", f"/triage/tips/{w.tip_b}/assign", form={"value": w.officers["canbo"]}
        ),
        400,
    ),
    "A's officer opens B's tip": Attempt(
        "canbo", lambda w, a: Call("GET", f"/triage/tips/{w.tip_b}"), 403
    ),
    "A's officer assigns A's tip to B's officer": Attempt(
        "canbo", lambda w, a: post_on_a("assign", value=w.officers["canbo2"])(w, a), 400
    ),
    "the commander assigns A's tip to the auditor": Attempt(
        "chihuy", lambda w, a: post_on_a("assign", value=w.officers["thanhtra"])(w, a), 400
    ),
    "the commander assigns A's tip to the admin": Attempt(
        "chihuy", lambda w, a: post_on_a("assign", value=w.officers["admin"])(w, a), 400
    ),
    "the auditor opens A's tip": Attempt("thanhtra", lambda w, a: Call("GET", tip_a(w, a)), 403),
    "the auditor downloads A's attachment": Attempt(
        "thanhtra", lambda w, a: Call("GET", f"{tip_a(w, a)}/attachments/{a}"), 403
    ),
    "the auditor adds a note to A's tip": Attempt(
        "thanhtra", post_on_a("note", text="Ghi chú của thanh tra"), 403
    ),
    "the admin opens A's tip": Attempt("admin", lambda w, a: Call("GET", tip_a(w, a)), 403),
    "the admin downloads A's attachment": Attempt(
        "admin", lambda w, a: Call("GET", f"{tip_a(w, a)}/attachments/{a}"), 403
    ),
    "the admin prints A's poster": Attempt(
        "admin", lambda w, a: Call("GET", f"/triage/units/{w.units[UNIT_A]}/poster"), 403
    ),
    "an officer reads another officer's audit trail": Attempt(
        "canbo", lambda w, a: Call("GET", f"/audit/officers/{w.officers['canbo2']}"), 403
    ),
    "an officer disables an account": Attempt(
        "canbo",
        lambda w, a: Call(
            "POST", f"/admin/officers/{w.officers['canbo2']}/active", form={"value": "off"}
        ),
        403,
    ),
    "a tip id nobody has": Attempt(
        "canbo", lambda w, a: Call("GET", "/triage/tips/00000000000000000000000000"), 404
    ),
    "an attachment id nobody has, on A's tip": Attempt(
        "canbo", lambda w, a: Call("GET", f"{tip_a(w, a)}/attachments/0000000000000000"), 404
    ),
    "a unit id nobody has": Attempt(
        "canbo", lambda w, a: Call("GET", "/triage/units/0000000000000000/poster"), 404
    ),
    "A's Zalo receipt code on the web follow-up page": Attempt(
        "anonymous",
        lambda w, a: Call(
            "POST",
            "/tra-cuu",
            form={
                "code": w.receipt_a,
                "passphrase": "x y z",
                **w.lookup_work(w.client("anonymous")),
            },
        ),
        403,
    ),
}


def assert_nothing_of_a(world: World, response: TestResponse) -> None:
    """Nothing of tip A in the page, but what the person typed into a field themself."""
    html = response.get_data(as_text=True).replace(f'value="{world.receipt_a}"', "")
    for secret in (world.receipt_a, TEXT_A, NOTE_A, REPLY_A, world.tip_a):
        assert secret not in html


@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_another_units_objects_are_refused_and_nothing_changes(
    world: World, attachment_a: str, attempt: Attempt
) -> None:
    client = world.client(attempt.role)
    token = world.token(client)
    call = attempt.build(world, attachment_a)
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    with world.runtime.sessions() as db:
        seen = db.scalar(select(func.max(AuditEvent.seq))) or 0
    response = send(client, call, token)
    assert response.status_code == attempt.status
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)
    assert_nothing_of_a(world, response)
    with world.runtime.sessions() as db:
        added = [
            (e.action, e.outcome, e.object_id, e.actor_name)
            for e in db.scalars(select(AuditEvent).where(AuditEvent.seq > seen))
        ]
    tips = {world.tip_a, world.tip_b}
    named = next((t for t in tips if call.path.startswith(f"/triage/tips/{t}")), None)
    if response.status_code == 403 and named is not None:
        assert added == [("tip_open", "denied", named, attempt.role)]
    else:
        assert added == []


def test_b_marks_its_tip_a_duplicate_of_as_tip_refused_nothing_changes(world: World) -> None:
    """A's receipt code is a real one, but not of B's units: refused as an unknown code is
    (the officer learns nothing about A's tips)."""
    client = world.client("canbo2")
    before = snapshot(world.runtime)
    for code in (world.receipt_a, "TL-0000-0000"):
        call = Call("POST", f"/triage/tips/{world.tip_b}/duplicate", form={"receipt_code": code})
        response = send(client, call, world.token(client))
        assert response.status_code == 302
        with client.session_transaction() as session:
            flashed = session.pop("_flashes", [])
        assert [tuple(f) for f in flashed] == [
            ("info", "Không có tin báo nào khác của đơn vị mang mã này.")
        ]
        assert_unchanged(world.runtime, before)


def test_b_finds_none_of_as_tips_by_search_or_filter(world: World) -> None:
    client = world.client("canbo2")
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    pages = [
        client.get("/triage/search/", query_string={"q": "ma túy"}),
        client.get("/triage/search/", query_string={"q": world.receipt_a}),
        client.get("/triage/", query_string={"unit": world.units[UNIT_A]}),
        client.get("/triage/", query_string={"assignee": world.officers["canbo"]}),
        client.get("/triage/", query_string={"status": "new", "unit": world.units[UNIT_A]}),
    ]
    for response in pages:
        assert response.status_code == 200
        assert_nothing_of_a(world, response)
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)
    with world.runtime.sessions() as db:
        searches = db.scalars(select(AuditEvent).where(AuditEvent.action == "search")).all()
    assert [e.detail["results"] for e in searches] == ["0", "0"]
