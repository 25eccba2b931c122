"""Admin pages: accounts, OAs and keys through the forms; no tip content; admins only."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import OFFICER_PASSWORD, expand
from tests.triage_helpers import csrf_from, login, post_form
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import AuditEvent, Officer, OfficialAccount, Tip, Unit, UnitKey
from tipline.runtime import Runtime

TEXT = "Có người bán ma túy ở bến xe khách"


@pytest.fixture
def admin(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> FlaskClient:
    """Logged in as "quantri", an admin (no unit, no key)."""
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        account = add_officer(
            session,
            username="quantri",
            display_name="Quản trị",
            role="admin",
            unit_code=None,
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    landed = login(client, "quantri", account.totp_secret)
    assert landed.status_code == 302 and landed.location.endswith("/admin/")
    return client


def audit_events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def unit_public_id(runtime: Runtime, code: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Unit.public_id).where(Unit.code == code)).one()


def test_the_page_lists_units_and_accounts_and_no_tip_content(
    admin: FlaskClient, runtime: Runtime
) -> None:
    raw = event(text=TEXT, msg_id="admin-1")
    assert admin.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        tip_id = session.scalars(select(Tip.public_id)).one()
    assert dispatch_tip(tip_id) == "dispatched"
    page = admin.get("/admin/").get_data(as_text=True)
    for expected in ("canbo2", "thanhtra", "Công an xã Lương Thế Trân", "v2025:32134"):
        assert expected in page
    assert TEXT not in page and tip_id not in page
    # Admins hold no key: the tip stays closed to them.
    assert admin.get(f"/triage/tips/{tip_id}").status_code == 403


def test_an_admin_creates_an_account_that_logs_in_and_enrols(
    admin: FlaskClient, runtime: Runtime
) -> None:
    created = post_form(
        admin,
        "/admin/",
        "/admin/officers",
        {
            "username": "canbo3",
            "display_name": "Cán bộ Ba",
            "role": "officer",
            "unit": "v2025:32134",
        },
    )
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    html = created.get_data(as_text=True)
    password = re.search(r'id="new-password"><code>([^<]+)<', html)
    assert password
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == "canbo3")).one()
        quantri = session.scalars(select(Officer).where(Officer.username == "quantri")).one()
        assert officer.unit is not None and officer.unit.code == "v2025:32134"
    [made] = [
        e for e in audit_events(runtime, "account_create") if e.object_id == officer.public_id
    ]
    assert made.actor_id == quantri.public_id
    newcomer = admin.application.test_client()
    first = login(newcomer, "canbo3", "", password=password.group(1), code="")
    assert first.status_code == 302 and first.location.endswith("/login/totp-setup")

    # A taken username or a bad role: a clear error, nothing written.
    before = len(audit_events(runtime, "account_create"))
    for bad in (
        {"username": "canbo", "display_name": "X", "role": "officer", "unit": "v2025:32134"},
        {"username": "moi", "display_name": "X", "role": "root", "unit": ""},
        {"username": "../x", "display_name": "X", "role": "auditor", "unit": ""},
        {"username": "moi2", "display_name": "X", "role": "officer", "unit": ""},
    ):
        refused = post_form(admin, "/admin/", "/admin/officers", bad)
        assert refused.status_code == 400, bad
        assert 'role="alert"' in refused.get_data(as_text=True)
    assert len(audit_events(runtime, "account_create")) == before
    with runtime.sessions() as session:
        assert session.scalar(select(func.count(Officer.id))) == 6


def test_disabling_an_account_stops_its_login(
    admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    with runtime.sessions() as session:
        target = session.scalars(
            select(Officer.public_id).where(Officer.username == "canbo2")
        ).one()
        me = session.scalars(select(Officer.public_id).where(Officer.username == "quantri")).one()
    url = f"/admin/officers/{target}/active"
    assert post_form(admin, "/admin/", url, {"value": "off"}).status_code == 302
    other = admin.application.test_client()
    assert login(other, "canbo2", units["totp:canbo2"]).status_code == 401
    assert [e.detail for e in audit_events(runtime, "account_change")] == [{"active": "False"}]
    assert (
        post_form(admin, "/admin/", f"/admin/officers/{me}/active", {"value": "off"}).status_code
        == 409
    )
    assert post_form(admin, "/admin/", url, {"value": "maybe"}).status_code == 400
    assert admin.post(url, data={"value": "on"}).status_code == 400  # no CSRF token
    assert (
        post_form(admin, "/admin/", "/admin/officers/nobody/active", {"value": "on"}).status_code
        == 404
    )
    assert post_form(admin, "/admin/", url, {"value": "on"}).status_code == 302
    assert login(other, "canbo2", units["totp:canbo2"]).status_code == 302


def test_attaching_an_oa_and_rotating_a_key(admin: FlaskClient, runtime: Runtime) -> None:
    commune = unit_public_id(runtime, "v2025:32128")
    url = f"/admin/units/{commune}/oa"
    assert post_form(admin, "/admin/", url, {"oa_id": "3886132808788132128"}).status_code == 302
    assert post_form(admin, "/admin/", url, {"oa_id": "abc"}).status_code == 400
    with runtime.sessions() as session:
        oa = session.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == "3886132808788132128")
        ).one()
        assert oa.unit.code == "v2025:32128"
    assert [e.object_id for e in audit_events(runtime, "oa_attach")][-1] == "3886132808788132128"

    def versions() -> list[int]:
        with runtime.sessions() as session:
            return list(
                session.scalars(
                    select(UnitKey.version).join(Unit).where(Unit.code == "v2025:32128")
                )
            )

    before = versions()
    assert post_form(admin, "/admin/", f"/admin/units/{commune}/rotate-key", {}).status_code == 302
    assert len(versions()) == len(before) + 1
    assert audit_events(runtime, "key_rotate")
    # A unit without a key yet (no officer enrolled): refused, nothing created.
    from tipline.units import add_unit

    with runtime.sessions() as session, session.begin():
        add_unit(session, code="v2025:32137", name="Công an xã Hưng Mỹ", level="commune")
    empty = unit_public_id(runtime, "v2025:32137")
    assert post_form(admin, "/admin/", f"/admin/units/{empty}/rotate-key", {}).status_code == 409


@pytest.mark.parametrize("username", ["canbo", "chihuy", "thanhtra"])
def test_only_admins(client: FlaskClient, units: dict[str, str], username: str) -> None:
    login(client, username, units[f"totp:{username}"])
    assert client.get("/admin/").status_code == 403
    page = client.get("/tra-cuu").get_data(as_text=True)
    refused = client.post("/admin/officers", data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 403
