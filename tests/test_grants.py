"""Key grants and insiders (issues 14, 16, 19): no unit key without a key holder's approval,
assignments only to who can open, and the account life-cycle (disable, recovery, password and
authenticator resets, moves, roles, rotations), each through the real forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import OFFICER_PASSWORD, PROVINCE_OA, expand
from tests.triage_helpers import approve_all, csrf_from, login, post_form, totp_code
from tests.zalo_events import event, signed_headers
from tipline.audit import NEW_ACCOUNT_GRANT, anomalies
from tipline.jobs.dispatch import dispatch_tip
from tipline.keychain import NoKeyChain, open_tip_key, unit_keys_of, unlock_officer_key
from tipline.models import (
    AuditEvent,
    Holder,
    KeyGrant,
    Officer,
    Subject,
    Tip,
    Unit,
    UnitKey,
    utcnow,
)
from tipline.runtime import Runtime

WAITING = "chờ người giữ khóa phê duyệt"
NEW_PASSWORD = "mat khau rieng cua toi"


def send_tip(client: FlaskClient, runtime: Runtime, msg_id: str, oa: str | None = None) -> str:
    """A tip to the commune's OA (or ``oa``), dispatched; its public id."""
    kwargs = {"oa": oa} if oa else {}
    # An informant of its own per tip: one informant's messages join their open tip.
    user = str(abs(hash(msg_id)) % 10**12)
    raw = event(text=f"Có người bán ma túy ({msg_id})", msg_id=msg_id, user=user, **kwargs)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id).order_by(Tip.id.desc())).first()
    assert public_id is not None and dispatch_tip(public_id) == "dispatched"
    return public_id


@pytest.fixture
def admin(app: object, runtime: Runtime, units: dict[str, str]) -> FlaskClient:
    from flask import Flask

    from tipline.officers import add_officer

    assert isinstance(app, Flask)
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
    client = app.test_client()
    assert login(client, "quantri", account.totp_secret).status_code == 302
    return client


def logged_in(client: FlaskClient, units: dict[str, str], username: str) -> FlaskClient:
    other = client.application.test_client()
    assert login(other, username, units[f"totp:{username}"]).status_code == 302
    return other


def officer_id(runtime: Runtime, username: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Officer.public_id).where(Officer.username == username)).one()


def unit_keys_held(runtime: Runtime, username: str) -> int:
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == username)).one()
        return len(
            session.scalars(
                select(KeyGrant.id).where(
                    KeyGrant.holder_kind == Holder.OFFICER, KeyGrant.holder_id == officer.id
                )
            ).all()
        )


def first_login(client: FlaskClient, username: str, password: str) -> str:
    """Password, the authenticator enrolled from the QR page (its secret read off the page),
    and the password replaced when an admin set it; the TOTP secret."""
    response = login(client, username, "", password=password, code="")
    assert response.status_code == 302 and response.location.endswith("/login/totp-setup")
    page = client.get("/login/totp-setup").get_data(as_text=True)
    secret = re.search(r"<code>([A-Z2-7]{16,})</code>", page)
    assert secret is not None
    done = client.post(
        "/login/totp-setup",
        data={"csrf_token": csrf_from(page), "code": totp_code(secret.group(1))},
    )
    if done.location.endswith("/login/new-password"):
        page = client.get("/login/new-password").get_data(as_text=True)
        saved = client.post(
            "/login/new-password",
            data={
                "csrf_token": csrf_from(page),
                "new_password": NEW_PASSWORD,
                "confirm": NEW_PASSWORD,
            },
        )
        assert saved.status_code == 200 and 'id="recovery-code"' in saved.get_data(as_text=True)
    else:
        assert done.status_code == 302
    return secret.group(1)


def change(admin: FlaskClient, runtime: Runtime, username: str, what: str, **data: str) -> str:
    """Ask for a life-cycle change, check the confirmation page, confirm; the result page."""
    url = f"/admin/accounts/{officer_id(runtime, username)}"
    asked = post_form(admin, url, f"{url}/{what}", data)
    assert asked.status_code == 200, asked.get_data(as_text=True)
    page = asked.get_data(as_text=True)
    assert 'id="consequence"' in page
    done = admin.post(
        f"{url}/{what}", data={"csrf_token": csrf_from(page), "confirm": "1", **data}
    )
    assert done.status_code in (200, 302), done.get_data(as_text=True)
    return done.get_data(as_text=True)


def test_an_admins_new_account_reads_nothing_until_a_key_holder_approves(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """The admin created an account, saw its password, and its grant completed at the next
    login of any key holder, audited as theirs: the admin could read a province."""
    tip = send_tip(client, runtime, "g-1")
    created = post_form(
        admin,
        "/admin/",
        "/admin/officers",
        {"username": "moi", "display_name": "Cán bộ Mới", "role": "officer", "unit": "v2025:32134"},
    ).get_data(as_text=True)
    password = re.search(r'id="new-password"><code>([^<]+)</code>', created)
    assert password is not None
    # A key holder of the unit logs in: nothing reaches the new account by itself.
    holder = logged_in(client, units, "canbo")
    assert unit_keys_held(runtime, "moi") == 0
    # Whoever has the password (the admin) logs in: it must be changed, and nothing opens.
    newcomer = client.application.test_client()
    first_login(newcomer, "moi", password.group(1))
    refused = newcomer.get(f"/triage/tips/{tip}")
    assert refused.status_code == 403 and WAITING in refused.get_data(as_text=True)
    assert WAITING in newcomer.get("/triage/").get_data(as_text=True)
    # The key holder sees who the account is, who created it, and approves.
    page = holder.get("/triage/grants/").get_data(as_text=True)
    assert "Cán bộ Mới" in page and "quantri" in page
    assert len(approve_all(holder)) == 1
    assert newcomer.get(f"/triage/tips/{tip}").status_code == 200
    with runtime.sessions() as session:
        grant = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "grant", AuditEvent.object_id == officer_id(runtime, "moi")
            )
        ).one()
        asked = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "grant_request",
                AuditEvent.object_id == officer_id(runtime, "moi"),
            )
        ).one()
        assert grant.actor_name == "canbo" and "quantri" not in grant.detail_json
        assert asked.actor_name == "quantri" and asked.detail["request"] == grant.detail["request"]
        flags = anomalies(session, since=utcnow() - timedelta(hours=1))
    flagged = [f for f in flags if f.kind == NEW_ACCOUNT_GRANT]
    assert officer_id(runtime, "moi") in {f.object_id for f in flagged}
    assert [f.actor_name for f in flagged if f.object_id == officer_id(runtime, "moi")] == [
        "canbo"
    ]


def test_only_key_holders_of_the_unit_or_above_decide(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    post_form(
        admin,
        "/admin/",
        "/admin/officers",
        {"username": "moi", "display_name": "Cán bộ Mới", "role": "officer", "unit": "v2025:32134"},
    )
    other = logged_in(client, units, "canbo2")  # another commune
    assert "Cán bộ Mới" not in other.get("/triage/grants/").get_data(as_text=True)
    commander = logged_in(client, units, "chihuy")
    page = commander.get("/triage/grants/").get_data(as_text=True)
    request_id = re.findall(r'action="/triage/grants/([a-z0-9]+)/approve"', page)
    assert len(request_id) == 1
    token = csrf_from(other.get("/triage/grants/").get_data(as_text=True))
    refused = other.post(f"/triage/grants/{request_id[0]}/approve", data={"csrf_token": token})
    assert refused.status_code == 403 and unit_keys_held(runtime, "moi") == 0
    assert admin.get("/triage/grants/").status_code == 403  # admins hold no key
    rejected = commander.post(
        f"/triage/grants/{request_id[0]}/reject", data={"csrf_token": csrf_from(page)}
    )
    assert rejected.status_code == 302 and unit_keys_held(runtime, "moi") == 0
    assert request_id[0] not in commander.get("/triage/grants/").get_data(as_text=True)


def test_a_tip_is_assigned_only_to_officers_who_can_open_it(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip = send_tip(client, runtime, "g-2")
    commander = logged_in(client, units, "chihuy")
    url = f"/triage/tips/{tip}"
    page = commander.get(url).get_data(as_text=True)
    form = page.split('id="form-triage"', 1)[1].split("</form>", 1)[0]
    assert officer_id(runtime, "canbo") in form and officer_id(runtime, "canbo2") not in form
    panel = {"triage-status": "new", "triage-priority": "normal", "triage-category": "ma_tuy"}
    for path in ("assign", "triage"):  # the old single form, and the console's one panel
        refused = post_form(
            commander,
            url,
            f"{url}/{path}",
            {"value": officer_id(runtime, "canbo2")}
            if path == "assign"
            else panel | {"triage-assignee": officer_id(runtime, "canbo2")},
        )
        assert refused.status_code == 400, path
    done = post_form(commander, url, f"{url}/assign", {"value": officer_id(runtime, "canbo")})
    assert done.status_code == 302


def test_disabling_ends_sessions_revokes_grants_and_rotates_the_keys(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    officer = logged_in(client, units, "canbo")
    assert officer.get("/triage/").status_code == 200
    with runtime.sessions() as session:
        commune = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        before = commune.current_key.version if commune.current_key else 0
        canbo = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        # The key as a copy of the database and the password would give it, kept for later.
        copied_key = unlock_officer_key(canbo, OFFICER_PASSWORD)
    sessions = runtime.redis.smembers(f"tipline:officer-sessions:{officer_id(runtime, 'canbo')}")
    assert sessions  # the account's session ids, to delete them at once
    change(admin, runtime, "canbo", "disable")
    for sid in sessions:  # the server halves (and the session's half of the key) are gone
        assert not runtime.redis.exists(b"tipline:session:" + sid)
    assert officer.get("/triage/").status_code == 302  # the session ended
    assert unit_keys_held(runtime, "canbo") == 0
    tip = send_tip(client, runtime, "g-3")  # sealed after the disabling
    with runtime.sessions() as session:
        commune = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert commune.current_key is not None and commune.current_key.version == before + 1
        canbo = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        with pytest.raises(NoKeyChain):
            open_tip_key(
                session,
                session.scalars(select(Tip).where(Tip.public_id == tip)).one(),
                unit_keys_of(session, canbo, copied_key),
            )
        actions = {e.action for e in session.scalars(select(AuditEvent))}
    assert {"grant_revoke", "key_rotate", "sessions_ended"} <= actions
    assert logged_in(client, units, "chihuy").get(f"/triage/tips/{tip}").status_code == 200
    assert "Đã cập nhật tài khoản." in admin.get("/admin/").get_data(as_text=True)


def test_password_recovery_ends_the_accounts_other_sessions(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="quenmk",
            display_name="Quên",
            role="auditor",
            unit_code="v2025:96",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    elsewhere = client.application.test_client()
    assert login(elsewhere, "quenmk", new.totp_secret).status_code == 302
    assert elsewhere.get("/audit/").status_code == 200
    page = client.get("/login/recover").get_data(as_text=True)
    recovered = client.post(
        "/login/recover",
        data={
            "csrf_token": csrf_from(page),
            "username": "quenmk",
            "recovery_code": new.recovery_code,
            "code": totp_code(new.totp_secret, 1),
            "new_password": "mat khau moi rat dai",
        },
    )
    assert recovered.status_code == 200
    assert elsewhere.get("/audit/").status_code == 302  # to the login page


def test_a_lost_authenticator_is_re_enrolled_and_the_key_re_approved(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip = send_tip(client, runtime, "g-4")
    old_session = logged_in(client, units, "canbo")
    change(admin, runtime, "canbo", "authenticator")
    assert old_session.get("/triage/").status_code == 302
    assert unit_keys_held(runtime, "canbo") == 0
    phone = client.application.test_client()
    secret = first_login(phone, "canbo", OFFICER_PASSWORD)
    assert secret != units["totp:canbo"]
    assert phone.get(f"/triage/tips/{tip}").status_code == 403
    approve_all(logged_in(client, units, "chihuy"))
    assert phone.get(f"/triage/tips/{tip}").status_code == 200


def test_an_admins_password_reset_is_changed_at_login_and_re_approved(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    tip = send_tip(client, runtime, "g-5")
    page = change(admin, runtime, "canbo", "password")
    password = re.search(r'id="reset-password"><code>([^<]+)</code>', page)
    assert password is not None
    fresh = client.application.test_client()
    first_login(fresh, "canbo", password.group(1))
    assert fresh.get(f"/triage/tips/{tip}").status_code == 403
    approve_all(logged_in(client, units, "chihuy"))
    assert fresh.get(f"/triage/tips/{tip}").status_code == 200
    with runtime.sessions() as session:
        canbo = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        assert not canbo.must_change_password
        unlock_officer_key(canbo, NEW_PASSWORD)  # the officer's own password opens the key


def test_moving_an_officer_revokes_the_old_unit_and_waits_for_the_new(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    from tipline.units import set_oa

    old_tip = send_tip(client, runtime, "g-6")
    change(admin, runtime, "canbo", "unit", unit="v2025:32128")
    moved = logged_in(client, units, "canbo")
    assert moved.get(f"/triage/tips/{old_tip}").status_code == 403
    assert WAITING in moved.get("/triage/").get_data(as_text=True)
    approve_all(logged_in(client, units, "canbo2"))
    with runtime.sessions() as session, session.begin():
        set_oa(session, "v2025:32128", "3886132808788132128")
    new_tip = send_tip(client, runtime, "g-7", oa="3886132808788132128")
    assert moved.get(f"/triage/tips/{new_tip}").status_code == 200
    with runtime.sessions() as session:
        canbo = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        old = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        keys = unit_keys_of(session, canbo, unlock_officer_key(canbo, OFFICER_PASSWORD))
        assert not set(keys) & {k.id for k in old.keys}


def test_role_changes_follow_the_keys(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    page = admin.get(f"/admin/accounts/{officer_id(runtime, 'canbo')}").get_data(as_text=True)
    assert "cán bộ" in page.lower() and "thanh tra" in page.lower()  # Vietnamese role names
    change(admin, runtime, "canbo", "role", role="auditor")
    assert unit_keys_held(runtime, "canbo") == 0
    change(admin, runtime, "canbo", "role", role="officer")
    assert unit_keys_held(runtime, "canbo") == 0  # waits for approval
    approve_all(logged_in(client, units, "chihuy"))
    assert unit_keys_held(runtime, "canbo") > 0
    # Bad input: a unit that does not exist is a Vietnamese error on the page, nothing changed.
    url = f"/admin/accounts/{officer_id(runtime, 'canbo')}"
    bad = post_form(admin, url, f"{url}/unit", {"unit": "v2025:99999"})
    assert bad.status_code == 400 and "Đơn vị này không tồn tại." in bad.get_data(as_text=True)


def test_a_commander_added_after_a_province_rotation_opens_old_and_new_commune_tips(
    client: FlaskClient, admin: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """Issue 16: "a commander added after a province key rotation sees commune tips but gets
    403 opening them": the commune's old key was sealed to the province's old version only."""
    from tipline.officers import add_officer

    old_tip = send_tip(client, runtime, "g-8")
    with runtime.sessions() as session:
        province, commune = (
            session.scalars(select(Unit.public_id).where(Unit.code == code)).one()
            for code in ("v2025:96", "v2025:32134")
        )
    for unit in (province, commune):
        assert post_form(admin, "/admin/", f"/admin/units/{unit}/rotate-key", {}).status_code == 302
    new_tip = send_tip(client, runtime, "g-9")
    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="chihuy2",
            display_name="Phó chỉ huy",
            role="commander",
            unit_code="v2025:96",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    approve_all(logged_in(client, units, "chihuy"))
    deputy = client.application.test_client()
    assert login(deputy, "chihuy2", new.totp_secret).status_code == 302
    for tip in (old_tip, new_tip):
        assert deputy.get(f"/triage/tips/{tip}").status_code == 200
    with runtime.sessions() as session:
        versions = session.scalars(
            select(UnitKey.version)
            .join(KeyGrant, KeyGrant.subject_id == UnitKey.id)
            .join(Officer, Officer.id == KeyGrant.holder_id)
            .where(
                KeyGrant.subject_kind == Subject.UNIT_KEY,
                KeyGrant.holder_kind == Holder.OFFICER,
                Officer.username == "chihuy2",
            )
        ).all()
    assert sorted(versions) == [1, 2]


def test_the_province_oa_tip_stays_out_of_reach_of_communes(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """What each role can decrypt of a province tip: the commander only."""
    tip = send_tip(client, runtime, "g-10", oa=PROVINCE_OA)
    for username, status in (("canbo", 403), ("canbo2", 403), ("chihuy", 200)):
        assert logged_in(client, units, username).get(f"/triage/tips/{tip}").status_code in (
            status,
            404,
        )


def test_duty_assignment_skips_an_officer_waiting_for_the_key(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    from tipline.officers import add_officer
    from tipline.routing.duty import set_on_duty

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="moi",
            display_name="Mới",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
        assert new.key_pending
        set_on_duty(session, new.officer, True)

    def assignee(tip: str) -> str | None:
        with runtime.sessions() as session:
            row = session.scalars(select(Tip).where(Tip.public_id == tip)).one()
            return row.assignee.username if row.assignee else None

    assert assignee(send_tip(client, runtime, "g-11")) is None
    approve_all(logged_in(client, units, "canbo"))
    assert assignee(send_tip(client, runtime, "g-12")) == "moi"


def test_the_admins_forms_speak_vietnamese(admin: FlaskClient, runtime: Runtime) -> None:
    """An empty or wrong new-account form: the errors in Vietnamese, nothing created."""
    page = post_form(
        admin, "/admin/", "/admin/officers", {"username": "", "display_name": "", "role": "x"}
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Trường này là bắt buộc." in html and "Lựa chọn không hợp lệ." in html
    assert "This field is required." not in html and "Not a valid choice" not in html
