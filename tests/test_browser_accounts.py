"""The account life-cycle in a real browser (issues 14, 16, 19): the admin moves an officer to
another commune and resets a lost authenticator; a key holder of that commune approves each;
the officer then enrols the new authenticator and opens a tip of the new commune.

Playwright drives Debian's Chromium against the real web process and worker (the ``stack``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.browser import log_in, shot, wait_dispatched
from tests.conftest import OFFICER_PASSWORD, Stack
from tipline.models import Holder, KeyGrant, Officer
from tipline.runtime import Runtime

OA_B = "3886132808788132128"  # Công an xã Cái Nước
TEXT = "Có người trộm xe máy ở chợ Cái Nước, biển số 69B1-234.56"
INFORMANT = "7770001112223334444"


@pytest.fixture
def admin_and_oa(runtime: Runtime, units: dict[str, str]) -> dict[str, str]:
    """An admin, and an OA for Cái Nước (before the stack starts: it gets simulator tokens)."""
    from tipline.officers import add_officer
    from tipline.units import set_oa

    with runtime.sessions() as session, session.begin():
        set_oa(session, "v2025:32128", OA_B)
        admin = add_officer(
            session,
            username="quantri",
            display_name="Quản trị",
            role="admin",
            unit_code=None,
            password=OFFICER_PASSWORD,
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    return {**units, "totp:quantri": admin.totp_secret}


def confirm(page: Page, button: str) -> None:
    """Ask for a change on the account page; the confirmation says what it does; confirm."""
    page.click(button)
    expect(page.locator("#consequence")).to_be_visible()
    page.click("#confirm-button")
    expect(page.locator("#account-key")).to_contain_text("đang chờ người giữ khóa phê duyệt")


def approve(page: Page) -> None:
    """Cái Nước's officer (logged in on ``page``) approves the waiting account from the key
    approvals page."""
    page.click("#nav-grants")
    row = page.locator("#grant-requests tbody tr", has_text="Canbo")
    expect(row).to_contain_text("quantri")  # who asked for it
    row.locator("button.approve").click()
    expect(page.locator("#grant-requests")).not_to_contain_text("(canbo)")


def holds_grants(runtime: Runtime, username: str) -> bool:
    with runtime.sessions() as session:
        officer = session.scalars(select(Officer).where(Officer.username == username)).one()
        return (
            session.scalars(
                select(KeyGrant.id).where(
                    KeyGrant.holder_kind == Holder.OFFICER, KeyGrant.holder_id == officer.id
                )
            ).first()
            is not None
        )


def test_admin_moves_and_re_enrols_a_key_holder_approves_the_officer_reads(
    browser: Browser,
    admin_and_oa: dict[str, str],
    stack: Stack,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    base = stack.base_url
    logins = admin_and_oa
    sent = stack.tipline(
        "zalo", "send", "--to", base, "--oa", OA_B, "--user", INFORMANT, "--text", TEXT
    )
    assert sent.returncode == 0, sent.stderr
    tip = wait_dispatched(runtime)

    # Cái Nước's officer, a key holder of the commune the officer moves to (one login: a TOTP
    # code is good once).
    holder_context = browser.new_context()
    holder = holder_context.new_page()
    log_in(holder, base, "canbo2", logins["totp:canbo2"], "/triage/")

    admin_context = browser.new_context()
    admin = admin_context.new_page()
    log_in(admin, base, "quantri", logins["totp:quantri"], "/admin/")
    admin.click("#account-canbo a")
    expect(admin.locator("#account-role")).to_contain_text("cán bộ")
    # Move canbo from Lương Thế Trân to Cái Nước.
    admin.select_option("#move-unit", "v2025:32128")
    confirm(admin, "#move")
    expect(admin.locator("#account-unit")).to_have_text("Công an xã Cái Nước")
    assert not holds_grants(runtime, "canbo")
    approve(holder)
    assert holds_grants(runtime, "canbo")
    # The phone is lost: the admin resets the authenticator; the key waits again.
    admin.reload()
    confirm(admin, "#change-authenticator")
    shot(admin, tmp_path, "admin-account-waiting")
    assert not holds_grants(runtime, "canbo")
    approve(holder)
    admin_context.close()
    holder_context.close()

    # The officer logs in with the password and enrols the new authenticator from the QR page.
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#username", "canbo")
    page.fill("#password", OFFICER_PASSWORD)
    page.click("#login")
    expect(page).to_have_url(f"{base}/login/totp-setup")
    secret = re.search(r"[A-Z2-7]{16,}", page.locator("main code").inner_text())
    assert secret is not None and secret.group(0) != logins["totp:canbo"]
    page.fill("#code", pyotp.TOTP(secret.group(0)).now())
    page.click("main button[type=submit]")
    expect(page).to_have_url(f"{base}/triage/")
    page.click(f"a.tip-link[href='/triage/tips/{tip.public_id}']")
    expect(page.locator(".msg.in .text").first).to_have_text(TEXT)
    shot(page, tmp_path, "moved-officer-reads")
    context.close()
