"""Command and oversight in a real browser (issue 19), on a desktop and a phone.

The commander lands on the dashboard, clicks a shaded commune on the map and gets its overdue
tips; puts an officer on duty from the roster. The auditor finds every event of a receipt code
a citizen complained about (typed as people type it) and marks an anomaly reviewed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.browser import log_in, shot, wait_dispatched
from tests.conftest import COMMUNE_OA, Stack
from tests.test_browser_audit import fits_the_screen
from tipline.models import Tip, utcnow
from tipline.runtime import Runtime

TEXT = "Có người đánh bạc ăn tiền ở quán nước đầu hẻm 5"
INFORMANT = "5550001112223338888"


def _overdue(runtime: Runtime) -> Tip:
    """The tip arrived two days ago and nobody opened it: past any first-open SLA."""
    tip = wait_dispatched(runtime)
    with runtime.sessions() as db, db.begin():
        row = db.scalars(select(Tip).where(Tip.id == tip.id)).one()
        row.created_at = utcnow() - timedelta(days=2)
        row.first_opened_at = None
    return tip


def _phone(browser: Browser, page: Page) -> Page:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state()
    )
    return context.new_page()


def test_commander_clicks_a_commune_on_the_map_to_its_overdue_tips(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    sent = stack.tipline(
        "zalo", "send", "--to", base, "--oa", COMMUNE_OA, "--user", INFORMANT, "--text", TEXT
    )
    assert sent.returncode == 0, sent.stderr
    tip = _overdue(runtime)

    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    log_in(page, base, "chihuy", units["totp:chihuy"], "/triage/dashboard/")
    expect(page.locator("#province-map")).to_be_visible()
    expect(page.locator("#overdue-now")).to_have_text("1")
    shot(page, tmp_path, "command-01-dashboard")
    commune = page.locator("#province-map a.map-link", has=page.locator("path.has-overdue"))
    expect(commune).to_have_count(1)
    commune.click()
    expect(page).to_have_url(re.compile(r".*/triage/\?.*overdue=1.*"))
    expect(page.locator("a.tip-link")).to_have_text([tip.receipt_code])
    shot(page, tmp_path, "command-02-overdue")

    # The roster: put the commune's officer on duty.
    page.click("#nav-roster")
    expect(page.locator("h1")).to_have_text("Lịch trực")
    row = page.locator("tr", has_text="Canbo").first
    row.locator("button").click()
    expect(page.locator(".flash")).to_contain_text("đã bắt đầu trực")

    # On a phone: the dashboard and the roster fit the screen.
    phone = _phone(browser, page)
    for path in ("/triage/dashboard/", "/triage/roster/"):
        phone.goto(f"{base}{path}")
        assert fits_the_screen(phone), path
    shot(phone, tmp_path, "command-03-phone")


def test_auditor_finds_a_receipt_codes_events_and_reviews_an_anomaly(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    sent = stack.tipline(
        "zalo", "send", "--to", base, "--oa", COMMUNE_OA, "--user", INFORMANT, "--text", TEXT
    )
    assert sent.returncode == 0, sent.stderr
    tip = wait_dispatched(runtime)
    # Someone guesses a password five times at the login page: a flag for the auditor.
    guesser = browser.new_context().new_page()
    for _ in range(5):
        guesser.goto(f"{base}/login")
        guesser.fill("#username", "canbo2")
        guesser.fill("#password", "not it at all")
        guesser.fill("#code", "123456")
        guesser.click("#login")
        expect(guesser.locator("#login")).to_be_visible()

    page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    log_in(page, base, "thanhtra", units["totp:thanhtra"], "/audit/")
    # The citizen read the code over the phone: lower case, spaces for dashes.
    page.fill("#tip", tip.receipt_code.lower().replace("-", " "))
    page.click("#filter")
    expect(page.locator("tr.a-tip_received")).to_have_count(1)
    expect(page.locator("a.object-link.receipt").first).to_have_text(tip.receipt_code)
    page.locator("a.object-link.receipt").first.click()
    expect(page.locator("h1")).to_contain_text(tip.receipt_code)
    expect(page.locator("#tip-summary")).to_contain_text("Công an xã Lương Thế Trân")
    shot(page, tmp_path, "command-04-tip-history")

    page.click("#nav-anomalies")
    flag = page.locator("tr.k-failed_logins").first
    flag.locator("textarea").fill("Cán bộ nhập sai mật khẩu, đã xác minh qua điện thoại")
    flag.locator("button").click()
    expect(page.locator("tr.k-failed_logins .reviewed").first).to_contain_text("đã xác minh")
    page.check("input[name=unreviewed]")
    page.click("#anomaly-filters button")
    expect(page.locator("tr.k-failed_logins")).to_have_count(0)
    shot(page, tmp_path, "command-05-reviewed")

    phone = _phone(browser, page)
    for path in ("/audit/", f"/audit/tips/{tip.receipt_code}", "/audit/anomalies"):
        phone.goto(f"{base}{path}")
        assert fits_the_screen(phone), path
