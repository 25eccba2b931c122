"""Every route of the app × every role → the status it must get (issue 7, part 5).

The routes come from ``app.url_map``: a new route without a row here fails
:func:`test_every_route_of_the_app_has_a_row`. Each request is the one an authorised person
would send, on real objects of unit A (tests/hostile/routes.py), with a valid CSRF token, so a
cell says who may, not whether the form was filled in. Roles: nobody logged in; an officer of
unit A (canbo, v2025:32134); an officer of unit B (canbo2, v2025:32128); the commander of the
province above both (chihuy, v2025:96); the auditor (thanhtra); an admin.

docs/authorization.md is this table, written by ``python -m tests.test_authorization_matrix``;
:func:`test_the_document_is_this_table` keeps them equal.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from tests.conftest import OFFICER_PASSWORD
from tests.hostile.routes import LAST, REQUESTS, TO_LOGIN, Targets, outcome, send
from tests.hostile.world import ROLES, Deliverer, build_world, jpeg, upload
from tipline.keychain import NoKeyChain, open_tip_key, unit_keys_of, unlock_officer_key
from tipline.models import Officer, Tip
from tipline.runtime import Runtime

DOC = Path(__file__).resolve().parent.parent / "docs" / "authorization.md"
STAFF = ("canbo", "canbo2", "chihuy", "thanhtra", "admin")
UNIT_A_READERS = ("canbo", "chihuy")  # the unit's officer and the commander above it
HOLDERS = ("canbo", "canbo2", "chihuy")  # key-holding roles
Row = dict[str, str]


def everyone(status: str) -> Row:
    return dict.fromkeys(ROLES, status)


def staff(ok: str, *allowed: str, anonymous: str = TO_LOGIN) -> Row:
    """``ok`` for the ``allowed`` roles, 403 for every other account, ``anonymous`` for nobody."""
    return {"anonymous": anonymous} | {role: ok if role in allowed else "403" for role in STAFF}


def public(status: str, logged_in: str) -> Row:
    return {"anonymous": status} | dict.fromkeys(STAFF, logged_in)


EXPECTED: dict[str, Row] = {
    # --- machine routes: their own authentication (Zalo's signature), no session ---
    "POST /zalo/webhook": everyone("200"),
    "GET /healthz": everyone("200"),
    "GET /livez": everyone("200"),
    "GET /readyz": everyone("200"),
    "GET /static/<path:filename>": everyone("200"),
    # --- the Zalo simulator: mounted only in demo/test mode (TIPLINE_SIMULATOR=1) ---
    "GET /_sim/faults": everyone("200"),
    "POST /_sim/faults": everyone("200"),
    "DELETE /_sim/faults": everyone("200"),
    "POST /_sim/media": everyone("201"),
    "GET /_sim/media/<media_id>": everyone("200"),
    "GET /_sim/cdn/<host>/<media_id>": everyone("200"),
    "POST /_sim/media-faults": everyone("400"),
    "GET /_sim/messages": everyone("200"),
    "DELETE /_sim/messages": everyone("200"),
    "POST /_sim/interactions": everyone("200"),  # a user's last interaction, as Zalo knows it
    "POST /_sim/oa/<oa_id>": everyone("200"),  # an OA unfunded or misconfigured
    "POST /_sim/v2.0/oa/message": everyone("200"),  # Zalo answers refusals with 200 + error
    "POST /_sim/v3.0/oa/message/cs": everyone("200"),
    "POST /_sim/v4/oa/access_token": everyone("200"),
    "GET /_sim/v4/oa/permission": everyone("200"),  # the consent page
    "POST /_sim/v4/oa/permission": everyone("302"),  # approved: back to the app's callback
    # --- the informant's web form: public; a wrong proof of work or receipt code refused ---
    "GET /bao-tin": everyone("200"),
    "POST /bao-tin": everyone("400"),  # no proof of work
    "GET /tra-cuu": everyone("200"),
    "POST /tra-cuu": everyone("403"),  # an unknown receipt code
    # --- sessions ---
    "GET /login": public("200", logged_in="302"),  # logged in: to the home page
    "POST /login": public("400", logged_in="302"),  # empty form
    "GET /login/totp-setup": everyone(TO_LOGIN),  # no enrolment under way
    "POST /login/totp-setup": everyone(TO_LOGIN),
    "GET /login/new-password": everyone(TO_LOGIN),  # no admin-set password to replace
    "POST /login/new-password": everyone(TO_LOGIN),
    "GET /login/recover": everyone("200"),
    "POST /login/recover": everyone("200"),  # empty form: shown again
    "POST /lang/<code>": everyone("302"),  # back to the page it was posted from
    "POST /logout": everyone(TO_LOGIN),
    # --- officers and commanders: their units' tips ---
    "GET /triage/": staff("200", *STAFF),  # auditors and admins: an empty list, no unit
    "GET /triage/search/": staff("200", *HOLDERS),
    "GET /triage/dashboard/": staff("200", "chihuy"),
    "GET /triage/tips/<public_id>": staff("200", *UNIT_A_READERS),
    "GET /triage/tips/<public_id>/attachments/<attachment_id>": staff("200", *UNIT_A_READERS),
    "GET /triage/tips/<public_id>/attachments/<attachment_id>/view": staff(
        "200", *UNIT_A_READERS
    ),
    "POST /triage/tips/<public_id>/status": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/priority": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/category": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/assign": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/note": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/reply": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/transfer": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/escalate": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/duplicate": staff("302", *UNIT_A_READERS),  # confirmed
    "GET /triage/tips/<public_id>/related": staff("200", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/link": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/unlink": staff("302", *UNIT_A_READERS),  # not linked: said
    "GET /triage/roster/": staff("200", *HOLDERS),  # an officer sees only themselves
    "POST /triage/roster/<public_id>": staff("302", "canbo", "chihuy"),  # self, or above
    # --- key holders: approve the unit keys of accounts waiting for them (tipline.grants) ---
    "GET /triage/grants/": staff("200", *HOLDERS),
    "POST /triage/grants/<public_id>/approve": staff("302", *UNIT_A_READERS),
    "POST /triage/grants/<public_id>/reject": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/take": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/triage": staff("302", *UNIT_A_READERS),
    "POST /triage/tips/<public_id>/export.pdf": staff("200", *UNIT_A_READERS),
    # Where a tip went: only for whoever handed it over (nobody here did: 404 for all).
    "GET /triage/tips/<public_id>/moved": {"anonymous": TO_LOGIN} | dict.fromkeys(STAFF, "404"),
    "GET /triage/live": staff("200", *HOLDERS),  # the live inbox's poll
    "GET /triage/notifications": staff("200", *HOLDERS),
    "GET /triage/canned-replies/": staff("200", *HOLDERS),
    "POST /triage/canned-replies/": staff("302", "chihuy"),  # the unit's commander keeps them
    # An answer of no unit of the commander's: 404; nobody else may delete.
    "POST /triage/canned-replies/<public_id>/delete": staff("404", "chihuy"),
    "GET /triage/units/<public_id>/poster": staff("200", *UNIT_A_READERS),
    "GET /triage/units/<public_id>/poster.png": staff("200", *UNIT_A_READERS),
    # --- the auditor: the audit trail, no tip ---
    "GET /audit/": staff("200", "thanhtra"),
    "GET /audit/anomalies": staff("200", "thanhtra"),
    "GET /audit/officers/<public_id>": staff("200", "thanhtra"),
    "GET /audit/tips/<code>": staff("200", "thanhtra"),  # a tip's events, by receipt code
    "POST /audit/anomalies/review": staff("400", "thanhtra"),  # no such flag
    "GET /audit/verify": staff("200", "thanhtra"),
    "POST /audit/verify": staff("200", "thanhtra"),
    "POST /audit/export": staff("200", "thanhtra"),
    "POST /audit/checkpoints": staff("200", "thanhtra"),
    "POST /audit/checkpoints/export": staff("200", "thanhtra"),
    "POST /audit/checkpoints/compare": staff("400", "thanhtra"),  # a file that is no checkpoint
    # --- the admin: accounts, OAs, key versions, no tip ---
    "GET /admin/": staff("200", "admin"),
    "GET /admin/units/new": staff("200", "admin"),
    "POST /admin/units/new": staff("400", "admin"),  # empty form: refused, nothing added
    "GET /admin/units/<public_id>": staff("200", "admin"),
    "POST /admin/units/<public_id>/rename": staff("302", "admin"),
    "POST /admin/officers": staff("200", "admin"),  # the new account's one-time secrets
    "POST /admin/officers/<public_id>/active": staff("302", "admin"),
    "POST /admin/officers/<public_id>/unlock": staff("302", "admin"),
    "POST /admin/units/<public_id>/oa": staff("302", "admin"),
    "GET /admin/accounts/<public_id>": staff("200", "admin"),
    "POST /admin/accounts/<public_id>/<change>": staff("200", "admin"),  # the confirmation
    "POST /admin/units/<public_id>/rotate-key": staff("302", "admin"),
    # --- the admin: Zalo OAs (their connection; Zalo's consent) ---
    "GET /admin/zalo/": staff("200", "admin"),
    "GET /admin/zalo/connect/<oa_id>": staff("302", "admin"),  # to Zalo's consent page
    "GET /admin/zalo/callback": staff("200", "admin"),  # back from Zalo: the OA connected
    "POST /admin/zalo/<oa_id>/detach": staff("302", "admin"),  # confirmed: detached
    "GET /admin/zalo-events": staff("200", "admin"),  # metadata of quarantined events
    "POST /admin/zalo-events/retry-failed": staff("302", "admin"),  # set-aside events retried
}
# What each account's own key opens, through the key chain in the database (not the UI's
# check): unit A's tip, unit B's tip. Auditors and admins hold no unit key at all.
DECRYPTS: dict[str, tuple[str, ...]] = {
    "canbo": ("A",),
    "canbo2": ("B",),
    "chihuy": ("A", "B"),
    "thanhtra": (),
    "admin": (),
}
# Any other method on a route (GET on a form's action, POST on a page): 405 for every account;
# nobody logged in is sent to the login page first, as for any path that is not public.
OTHER_METHODS = ("GET", "POST")


def routes(app: Flask) -> set[str]:
    """ "METHOD /rule" for every route and method the app serves (HEAD, OPTIONS aside)."""
    return {
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def other_methods(app: Flask) -> list[str]:
    """ "METHOD /rule" for GET/POST where no route of that path takes the method."""
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        served.setdefault(rule.rule, set()).update(rule.methods or set())
    return sorted(
        f"{method} {path}"
        for path, methods in served.items()
        for method in OTHER_METHODS
        if method not in methods
    )


def test_every_route_of_the_app_has_a_row(app: Flask) -> None:
    served = routes(app)
    assert sorted(served - set(EXPECTED)) == [], "routes without a row in EXPECTED"
    assert sorted(set(EXPECTED) - served) == [], "rows for routes the app no longer has"
    assert set(REQUESTS) == set(EXPECTED), "every row needs its request in routes.py"
    assert all(set(row) == set(ROLES) for row in EXPECTED.values())
    statuses = {"200", "201", "302", TO_LOGIN, "400", "403", "404"}
    assert {s for row in EXPECTED.values() for s in row.values()} <= statuses


def test_every_route_answers_every_role_as_the_table_says(
    app: Flask, runtime: Runtime, units: dict[str, str], sim: str, worker_beating: None
) -> None:
    world = build_world(app, runtime, units)
    targets = Targets(
        world=world,
        attachment=Deliverer(world, sim)(jpeg()),
        sim_media=upload(sim, "a.jpg", jpeg()).rsplit("/", 1)[-1],
    )
    order = sorted(set(EXPECTED) - set(LAST)) + list(LAST)
    actual: dict[str, Row] = {key: {} for key in order}
    for role in ROLES:  # the admin last: its key rotation is one of the last requests
        client = world.client(role)
        token = world.token(client)
        for key in order:
            actual[key][role] = outcome(send(client, REQUESTS[key](targets), token))
    wrong = [
        f"{key} as {role}: {actual[key][role]} (expected {EXPECTED[key][role]})"
        for key in order
        for role in ROLES
        if actual[key][role] != EXPECTED[key][role]
    ]
    assert wrong == []


def test_what_each_role_can_decrypt(app: Flask, runtime: Runtime, units: dict[str, str]) -> None:
    """Not only statuses: each account's key (unlocked with its password, as a copy of the
    database and the password would allow) opens exactly the tips of ``DECRYPTS``, and the tip
    page agrees."""
    world = build_world(app, runtime, units)
    tips = {"A": world.tip_a, "B": world.tip_b}
    for role, expected in DECRYPTS.items():
        opened = set()
        with runtime.sessions() as db:
            officer = db.scalars(select(Officer).where(Officer.username == role)).one()
            keys = unit_keys_of(db, officer, unlock_officer_key(officer, OFFICER_PASSWORD))
            for name, public_id in tips.items():
                tip = db.scalars(select(Tip).where(Tip.public_id == public_id)).one()
                try:
                    open_tip_key(db, tip, keys)
                    opened.add(name)
                except NoKeyChain:
                    pass
        assert opened == set(expected), role
        client = world.client(role)
        shown = {n for n, t in tips.items() if client.get(f"/triage/tips/{t}").status_code == 200}
        assert shown == set(expected), role


def test_any_other_method_is_405_for_every_account(
    app: Flask, runtime: Runtime, units: dict[str, str]
) -> None:
    world = build_world(app, runtime, units)
    wrong = []
    for role in ROLES:
        client = world.client(role)
        token = world.token(client)
        for key in other_methods(app):
            method, rule = key.split(" ", 1)
            path = rule.replace("<path:filename>", "tipline.css")
            names = ("public_id", "attachment_id", "media_id", "code", "oa_id", "host", "change")
            for name in names:
                path = path.replace(f"<{name}>", "x")
            data = {"csrf_token": token} if method == "POST" else None
            got = outcome(client.open(path, method=method, data=data))
            # Nobody logged in is sent to log in before the route is looked at (default deny).
            if got != (TO_LOGIN if role == "anonymous" else "405"):
                wrong.append(f"{key} as {role}: {got}")
    assert wrong == []


# --- the document -----------------------------------------------------------------------------

ROLE_HEADINGS = {
    "anonymous": "nobody",
    "canbo": "officer, unit A",
    "canbo2": "officer, unit B",
    "chihuy": "commander above A",
    "thanhtra": "auditor",
    "admin": "admin",
}


def render() -> str:
    lines = [
        "# Who may do what: the authorisation matrix",
        "",
        "Generated from `EXPECTED` in `tests/test_authorization_matrix.py` by",
        "`python -m tests.test_authorization_matrix`; the test suite checks that every route of",
        "the app has a row, that each request gets exactly this status, and that this page is",
        "the table. Do not edit by hand.",
        "",
        "Each request is the one an authorised person would send (valid form, valid CSRF token)",
        "on real objects of unit A (Công an xã Lương Thế Trân, `v2025:32134`): its tip, the",
        "tip's attachment, the unit, its officer's account. Roles: nobody logged in; `canbo`,",
        "officer of unit A; `canbo2`, officer of unit B (Công an xã Cái Nước, `v2025:32128`);",
        "`chihuy`, commander of the province above both (`v2025:96`); `thanhtra`, auditor; an",
        "admin.",
        "",
        f"`{TO_LOGIN}`: redirected to the login page. `302`: redirected elsewhere (the page the",
        "action came from, the home page). A refused proof of work is `400`, an unknown",
        "receipt code `403`. Any other method on a route (a GET on a form's action, a POST",
        f"on a page) is `405` for every account and `{TO_LOGIN}` for nobody logged in (as for",
        "any path that is not public, unknown ones included: default deny). `/_sim/…` exists",
        "only in demo and test mode (`TIPLINE_SIMULATOR=1`).",
        "",
        "| route | " + " | ".join(ROLE_HEADINGS[r] for r in ROLES) + " |",
        "| --- |" + " --- |" * len(ROLES),
    ]
    for key, row in EXPECTED.items():
        lines.append(f"| `{key}` | " + " | ".join(row[r] for r in ROLES) + " |")
    lines += [
        "",
        "## What each account's key decrypts",
        "",
        "Checked by `test_what_each_role_can_decrypt` through the key chain in the database (the",
        "account's own key, unlocked with its password), not only the pages' statuses: unit A's",
        "tip, unit B's tip. Auditors and admins hold no unit key; an account waiting for a key",
        "holder's approval holds none either (`tipline.grants`).",
        "",
        "| account | decrypts |",
        "| --- | --- |",
    ]
    for role, opened in DECRYPTS.items():
        names = ", ".join(f"unit {n}'s tip" for n in opened) or "nothing"
        lines.append(f"| {ROLE_HEADINGS[role]} | {names} |")
    return "\n".join(lines) + "\n"


def test_the_document_is_this_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/authorization.md is stale: run `python -m tests.test_authorization_matrix`"
    )


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
