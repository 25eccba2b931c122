"""SQL-looking strings, NUL bytes, huge strings, traversal, redirects and header injection.

Every search and filter parameter, every identifier in a URL or a form, gets SQL-looking
strings: each answer is the one for a value that is simply wrong (an empty list, 400, 403,
404), never a 500 and never another unit's tip; nothing stored changes but the audit event
the page writes anyway (a search, an auditor's page view, a failed login); whatever is shown
back is escaped. The payloads are run in a loop within each parameter's case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from markupsafe import escape
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.hostile.routes import Call, send
from tests.hostile.snapshot import AUDIT_TABLES, assert_unchanged, snapshot
from tests.hostile.world import NOTE_A, REPLY_A, TEXT_A, UNIT_A, World
from tests.triage_helpers import csrf_from, totp_code
from tipline.files import FileStore
from tipline.models import AuditEvent

SQL = (
    "' OR '1'='1",
    "1; DROP TABLE tips; --",
    '" OR 1=1 --',
    "%' UNION SELECT receipt_code, informant_alias FROM tips --",
)


@dataclass(frozen=True)
class Param:
    role: str
    build: Callable[[World, str], Call]  # (world, hostile value) → the request
    status: int | tuple[int, ...]
    audited: frozenset[str] = field(default_factory=frozenset)  # events the page writes anyway


def get(path: str, **query: str) -> Callable[[World, str], Call]:
    """GET ``path`` with the hostile value in each query parameter named by ``query``."""

    def build(w: World, value: str) -> Call:
        args = "&".join(f"{k}={quote(v.format(value=value, **ids(w)))}" for k, v in query.items())
        return Call("GET", path.format(**ids(w)) + ("?" + args if args else ""))

    return build


def in_path(template: str) -> Callable[[World, str], Call]:
    return lambda w, value: Call("GET", template.format(value=quote(value, safe=""), **ids(w)))


def post(path: str, **form: str) -> Callable[[World, str], Call]:
    def build(w: World, value: str) -> Call:
        fields = {k: v.format(value=value, **ids(w)) for k, v in form.items()}
        return Call("POST", path.format(**ids(w)), form=fields)

    return build


def ids(w: World) -> dict[str, str]:
    return {
        "tip": w.tip_a,
        "unit": w.units[UNIT_A],
        "canbo": w.officers["canbo"],
        "receipt": w.receipt_a,
    }


V = "{value}"
VIEW = frozenset({"audit_view"})
INBOX, SEARCH, AUDIT = "/triage/", "/triage/search/", "/audit/"
TIP = "/triage/tips/{tip}"

PARAMS: dict[str, Param] = {
    **{
        f"inbox {name}": Param("canbo2", get(INBOX, **{name: V}), 200)
        for name in ("status", "priority", "category", "assignee", "unit", "since", "until")
    },
    "inbox page": Param("canbo2", get(INBOX, page=V), 200),
    "search q": Param("canbo2", get(SEARCH, q=V), 200, frozenset({"search"})),
    **{
        f"audit log {name}": Param("thanhtra", get(AUDIT, **{name: V}), 200, VIEW)
        for name in ("officer", "unit", "tip", "action", "outcome", "since", "until", "page")
    },
    "audit log unit and below": Param("thanhtra", get(AUDIT, unit=V, below="y"), 200, VIEW),
    **{
        f"anomalies {name}": Param("thanhtra", get("/audit/anomalies", **{name: V}), 200, VIEW)
        for name in ("officer", "unit", "since", "until")
    },
    "an officer's audit page, its id": Param("thanhtra", in_path("/audit/officers/{value}"), 404),
    "an officer's audit page, its action filter": Param(
        "thanhtra", get("/audit/officers/{canbo}", action=V), 200, VIEW
    ),
    **{
        f"audit export {name}": Param("thanhtra", post("/audit/export", **{name: V}), 400)
        for name in ("officer", "unit", "tip", "action", "outcome", "since")
    },
    "login username": Param(
        "anonymous",
        post("/login", username=V, password="correct horse battery", code="123456"),
        401,
        frozenset({"login_failed"}),
    ),
    "recovery username": Param(
        "anonymous",
        post(
            "/login/recover",
            username=V,
            recovery_code="AAAA-BBBB-CCCC",
            code="123456",
            new_password="một mật khẩu mới dài",
        ),
        401,
        frozenset({"login_failed"}),
    ),
    "follow-up receipt code": Param("anonymous", post("/tra-cuu", code=V, passphrase="a b c"), 403),
    "follow-up passphrase": Param(
        "anonymous", post("/tra-cuu", code="TL-0000-0001", passphrase=V), 403
    ),
    "web form unit": Param("anonymous", post("/bao-tin", unit=V, text="Tin báo", nonce="1"), 400),
    "web form latitude": Param(
        "anonymous", post("/bao-tin", unit="{unit}", text="Tin", lat=V, lon="105", nonce="1"), 400
    ),
    "web form unit in the link": Param("anonymous", get("/bao-tin", **{"don-vi": V}), 200),
    "duplicate receipt code": Param("canbo", post(TIP + "/duplicate", receipt_code=V), (302, 400)),
    **{
        f"tip {action} value": Param("canbo", post(f"{TIP}/{action}", value=V), 400)
        for action in ("status", "priority", "category", "assign", "transfer")
    },
    "tip id in the URL": Param("canbo", in_path("/triage/tips/{value}"), 404),
    "attachment id in the URL": Param("canbo", in_path(TIP + "/attachments/{value}"), 404),
    "unit id in the poster URL": Param("canbo", in_path("/triage/units/{value}/poster"), 404),
    "admin: new account's username": Param(
        "admin", post("/admin/officers", username=V, display_name="Ai đó", role="officer"), 400
    ),
    "admin: new account's role": Param(
        "admin", post("/admin/officers", username="nguoi.moi", display_name="A", role=V), 400
    ),
    "admin: OA id": Param("admin", post("/admin/units/{unit}/oa", oa_id=V), 400),
    "admin: account switch": Param("admin", post("/admin/officers/{canbo}/active", value=V), 400),
    "admin: account id in the URL": Param(
        "admin",
        lambda w, v: Call("POST", f"/admin/officers/{quote(v, safe='')}/unlock", form={}),
        404,
    ),
}


def assert_escaped(response: TestResponse, value: str) -> None:
    """What needs escaping is escaped: the value never appears as typed, if it has HTML."""
    html = response.get_data(as_text=True)
    if str(escape(value)) != value:
        assert value not in html


def assert_nothing_of_other_units(world: World, response: TestResponse) -> None:
    html = response.get_data(as_text=True)
    for secret in (TEXT_A, NOTE_A, REPLY_A, world.receipt_a):
        assert secret not in html


@pytest.mark.parametrize("param", PARAMS.values(), ids=PARAMS.keys())
def test_sql_looking_values_are_only_wrong_values(world: World, param: Param) -> None:
    client = world.client(param.role)
    expected = param.status if isinstance(param.status, tuple) else (param.status,)
    with world.runtime.sessions() as db:
        mark = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) or 0
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    for value in SQL:
        response = send(client, param.build(world, value), world.token(client))
        assert response.status_code in expected, (value, response.status_code)
        assert_escaped(response, value)
        if param.role == "canbo2":
            assert_nothing_of_other_units(world, response)
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)
    with world.runtime.sessions() as db:
        added = db.scalars(select(AuditEvent).where(AuditEvent.id > mark)).all()
    # Only the events the page writes for any value; none of them quotes what was typed.
    assert {e.action for e in added} <= param.audited
    for event in added:
        assert all(value not in (event.detail_json or "") for value in SQL)


# --- NUL bytes: refused before any view (PostgreSQL would fail on them in a query) ----------

NUL = "ca\x00nbo"
NUL_REQUESTS: dict[str, tuple[str, Callable[[World], Call]]] = {
    "login username": (
        "anonymous",
        lambda w: Call("POST", "/login", form={"username": NUL, "password": "x" * 12}),
    ),
    "recovery username": (
        "anonymous",
        lambda w: Call(
            "POST",
            "/login/recover",
            form={
                "username": NUL,
                "recovery_code": "A",
                "code": "123456",
                "new_password": "x" * 12,
            },
        ),
    ),
    "follow-up receipt code": (
        "anonymous",
        lambda w: Call("POST", "/tra-cuu", form={"code": "TL-\x00", "passphrase": "a b"}),
    ),
    "web form text": (
        "anonymous",
        lambda w: Call(
            "POST", "/bao-tin", form={"unit": w.units[UNIT_A], "text": "a\x00b", "nonce": "1"}
        ),
    ),
    "tip id in the URL": ("canbo", lambda w: Call("GET", "/triage/tips/TL%00x")),
    "tip id in the URL, logged out": ("anonymous", lambda w: Call("GET", "/triage/tips/x%00")),
    "attachment id in the URL": (
        "canbo",
        lambda w: Call("GET", f"/triage/tips/{w.tip_a}/attachments/a%00b"),
    ),
    "poster unit id": ("canbo", lambda w: Call("GET", "/triage/units/%00/poster")),
    "duplicate receipt code": (
        "canbo",
        lambda w: Call("POST", f"/triage/tips/{w.tip_a}/duplicate", form={"receipt_code": NUL}),
    ),
    "note text": (
        "canbo",
        lambda w: Call("POST", f"/triage/tips/{w.tip_a}/note", form={"text": "ghi\x00chú"}),
    ),
    "inbox filter": ("canbo", lambda w: Call("GET", "/triage/?assignee=%00")),
    "search": ("canbo", lambda w: Call("GET", "/triage/search/?q=ma%00tuy")),
    "a parameter's name": ("canbo", lambda w: Call("GET", "/triage/?st%00atus=new")),
    "audit filter": ("thanhtra", lambda w: Call("GET", "/audit/?tip=%00")),
    "audit officer id": ("thanhtra", lambda w: Call("GET", "/audit/officers/%00")),
    "admin account id": (
        "admin",
        lambda w: Call("POST", "/admin/officers/%00/unlock", form={}),
    ),
}


@pytest.mark.parametrize("case", NUL_REQUESTS.values(), ids=NUL_REQUESTS.keys())
def test_a_nul_byte_anywhere_is_400_and_changes_nothing(
    world: World, case: tuple[str, Callable[[World], Call]]
) -> None:
    role, build = case
    client = world.client(role)
    token = world.token(client)
    before = snapshot(world.runtime)
    response = send(client, build(world), token)
    assert response.status_code == 400
    assert_unchanged(world.runtime, before)


# --- huge strings ------------------------------------------------------------------------------

HUGE: dict[str, tuple[str, Callable[[World], Call], int]] = {
    "a note of 2,001 characters": (
        "canbo",
        lambda w: Call("POST", f"/triage/tips/{w.tip_a}/note", form={"text": "n" * 2001}),
        400,
    ),
    "a reply of 2,001 characters": (
        "canbo",
        lambda w: Call("POST", f"/triage/tips/{w.tip_a}/reply", form={"text": "r" * 2001}),
        400,
    ),
    "a note of 17 MB": (
        "canbo",
        lambda w: Call(
            "POST", f"/triage/tips/{w.tip_a}/note", form={"text": "n" * 17 * 1024 * 1024}
        ),
        413,
    ),
    "a receipt code of 17 characters": (
        "canbo",
        lambda w: Call(
            "POST", f"/triage/tips/{w.tip_a}/duplicate", form={"receipt_code": "TL-" + "X" * 14}
        ),
        400,
    ),
    "a username of 65 characters": (
        "anonymous",
        lambda w: Call(
            "POST", "/login", form={"username": "u" * 65, "password": "x" * 12, "code": "123456"}
        ),
        400,
    ),
    "a password of 257 characters": (
        "anonymous",
        lambda w: Call(
            "POST", "/login", form={"username": "canbo", "password": "x" * 257, "code": "123456"}
        ),
        400,
    ),
    "a web report of 20,001 characters": (
        "anonymous",
        lambda w: Call(
            "POST", "/bao-tin", form={"unit": w.units[UNIT_A], "text": "t" * 20_001, "nonce": "1"}
        ),
        400,
    ),
    "a URL of 20,000 characters": (
        "canbo",
        lambda w: Call("GET", "/triage/tips/" + "x" * 20_000),
        404,
    ),
    "an audit filter of 10,000 characters": (
        "thanhtra",
        lambda w: Call("POST", "/audit/export", form={"tip": "x" * 10_000}),
        400,
    ),
}


@pytest.mark.parametrize("case", HUGE.values(), ids=HUGE.keys())
def test_huge_strings_are_refused_and_change_nothing(
    world: World, case: tuple[str, Callable[[World], Call], int]
) -> None:
    role, build, status = case
    client = world.client(role)
    token = world.token(client)
    before = snapshot(world.runtime)
    response = send(client, build(world), token)
    assert response.status_code == status
    assert_unchanged(world.runtime, before)


def test_a_huge_page_number_is_404_not_a_database_overflow(world: World) -> None:
    clients = {role: world.client(role) for role in ("canbo", "thanhtra")}
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    for role, path in (
        ("canbo", "/triage/?page=99999999999999999999"),
        ("thanhtra", "/audit/?page=9223372036854775807"),
        ("thanhtra", f"/audit/officers/{world.officers['canbo']}?page=99999999999999999999"),
    ):
        assert clients[role].get(path).status_code == 404, path
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)


@pytest.mark.parametrize(
    "extra",
    ["endpoint=x", "_external=1&_scheme=javascript", "_anchor=x", "_method=POST"],
)
def test_unknown_query_parameters_do_not_reach_the_page_links(world: World, extra: str) -> None:
    """They were passed to url_for() whole: "endpoint" made the page fail (500), "_anchor"
    and "_external" changed its links."""
    for role, path in (
        ("canbo", "/triage/?page=2&"),
        ("thanhtra", "/audit/?page=2&"),
        ("thanhtra", f"/audit/officers/{world.officers['canbo']}?page=2&"),
    ):
        response = world.client(role).get(path + extra)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert "javascript:" not in html and "#x" not in html and "http://localhost/" not in html


# --- traversal -------------------------------------------------------------------------------

TRAVERSALS: dict[str, tuple[str, str]] = {
    "static, dot-dot": ("anonymous", "/static/../tipline/config.py"),
    "static, encoded slashes": ("anonymous", "/static/..%2f..%2fpyproject.toml"),
    "static, encoded dots": ("anonymous", "/static/%2e%2e/%2e%2e/pyproject.toml"),
    "static, doubled": ("anonymous", "/static/....//....//pyproject.toml"),
    "static, backslashes": ("anonymous", "/static/..%5c..%5cpyproject.toml"),
    "tip id": ("canbo", "/triage/tips/..%2f..%2fstatic%2ftipline.css"),
    "attachment id": ("canbo", "/triage/tips/{tip}/attachments/..%2f..%2fsecrets%2ftransit.key"),
    "attachment id, dots only": ("canbo", "/triage/tips/{tip}/attachments/.."),
    "unit id": ("canbo", "/triage/units/..%2f..%2f/poster"),
    "officer id": ("thanhtra", "/audit/officers/..%2f..%2fetc%2fpasswd"),
    "simulator file": ("canbo", "/_sim/media/..%2f..%2ftipline.db"),
}


@pytest.mark.parametrize("case", TRAVERSALS.values(), ids=TRAVERSALS.keys())
def test_dot_dot_in_a_url_reaches_no_file(world: World, case: tuple[str, str]) -> None:
    role, path = case
    client = world.client(role)
    before = snapshot(world.runtime, skip=AUDIT_TABLES)
    response = client.get(path.format(tip=world.tip_a))
    assert response.status_code == 404
    body = response.get_data()
    assert b"[project]" not in body and b"TIPLINE_" not in body and b"SQLite" not in body
    assert_unchanged(world.runtime, before, skip=AUDIT_TABLES)


def test_the_file_store_takes_only_its_own_references(world: World) -> None:
    store = FileStore.for_data_dir(world.runtime.config.data_dir)
    for ref in ("../secrets/transit.key", "..", "a/b", "%2e%2e", "x" * 15, "ab\x00" * 8):
        with pytest.raises(ValueError, match="not a file store reference"):
            store.get(ref)


# --- redirects and header injection ----------------------------------------------------------

REFERERS = {
    "another site": "https://evil.example/phish",
    "a look-alike host": "http://localhost.evil.example/",
    "scheme-relative": "//evil.example/",
    "javascript": "javascript:alert(1)",
    "CRLF into a header": "http://localhost/tra-cuu\r\nSet-Cookie: pwned=1",
    "encoded CRLF": "http://localhost/tra-cuu%0d%0aSet-Cookie:%20pwned=1",
}


@pytest.mark.parametrize("referer", REFERERS.values(), ids=REFERERS.keys())
def test_the_language_switch_goes_back_only_to_this_site_and_sets_no_header(
    world: World, referer: str
) -> None:
    client = world.client("anonymous")
    response = client.post(
        "/lang/en",
        data={"csrf_token": world.token(client)},
        environ_overrides={"HTTP_REFERER": referer},  # as sent: the test client would refuse CRLF
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(("/", "http://localhost/")) and not location.startswith("//")
    assert "\r" not in location and "\n" not in location and "evil" not in location
    assert all("pwned" not in cookie for cookie in response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example", "/\\evil.example", "%0d%0aSet-Cookie:%20pwned=1"],
)
def test_login_ignores_a_next_parameter(world: World, target: str) -> None:
    client = world.fresh_client()
    page = client.get(f"/login?next={target}")
    assert page.status_code == 200
    response = client.post(
        f"/login?next={target}",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "username": "canbo",
            "password": "correct horse battery",
            "code": totp_code(world.totp["canbo"]),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/triage/"
    assert all("pwned" not in cookie for cookie in response.headers.getlist("Set-Cookie"))
