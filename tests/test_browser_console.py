"""The duty officer's console in Chromium (issue 18), on a phone and on a desktop.

A tip sent while the inbox is open appears without a reload, marked unread, with the alert
sound played; the officer takes it, classifies it, answers and notes on the tip screen, never
leaving it; an accessibility scan (axe-core, from the axe-playwright-python wheel, no CDN) finds
no serious or critical violation on any officer page, and no page is wider than the phone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.browser import log_in, shot
from tests.conftest import COMMUNE_OA, Stack
from tipline.models import Tip
from tipline.runtime import Runtime

KNIFE_FIGHT = "Đang có đánh nhau, có người cầm dao ở ngay đầu hẻm 12"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
SERIOUS = {"serious", "critical"}


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


WIDEST = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(-3)
  .map(e => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`)"""


def too_wide(page: Page, limit: int, settle: float = 5.0) -> list[str]:
    """What sticks out past ``limit`` px (the innermost elements) once the page has loaded, or
    nothing. Measured again for up to ``settle`` s: a URL is reached when the new page commits,
    and one CI run measured a tip page 731 px wide at that moment (never reproduced, with the
    stylesheets blocked or the network throttled); a page that stays too wide still fails, and
    says which elements stick out."""
    page.wait_for_load_state("load")
    deadline = time.monotonic() + settle
    while True:
        width = page_width(page)
        if width <= limit:
            return []
        if time.monotonic() > deadline:
            return [f"{width} px wide: {page.evaluate(WIDEST)}"]
        time.sleep(0.1)


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def send(stack: Stack, text: str, user: str) -> None:
    sent = stack.tipline(
        "zalo", "send", "--to", stack.base_url, "--oa", COMMUNE_OA, "--user", user, "--text", text
    )
    assert sent.returncode == 0, sent.stderr


def test_a_tip_sent_while_the_inbox_is_open_appears_and_is_triaged_on_a_phone(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    phone = browser.new_context(viewport=PHONE, permissions=["notifications"])
    page = phone.new_page()
    log_in(page, base, "canbo", units["totp:canbo"])
    page.wait_for_load_state("load")  # console.js (deferred) has attached its handlers
    expect(page.locator("#unread-total")).to_have_text("0 chưa đọc")
    page.click("#alerts-on")  # the officer allows the sound and the notifications
    expect(page.locator("#alerts-on")).to_have_attribute("aria-pressed", "true")

    started = time.monotonic()
    send(stack, KNIFE_FIGHT, "5550001112223334445")
    row = page.locator("#inbox-tips tr.unread").first
    expect(row).to_be_visible(timeout=30_000)
    seen_after, seen_at = time.monotonic() - started, datetime.now(UTC)
    expect(row).to_have_class("p-urgent live-new unread")
    page.wait_for_function("document.body.getAttribute('data-alert-played') === '1'")
    expect(page.locator("#unread-count")).to_have_text("1")
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        receipt, public_id = tip.receipt_code, tip.public_id
        assert tip.dispatched_at is not None
        dispatch = (tip.dispatched_at - tip.created_at).total_seconds()
        shown = (seen_at - tip.dispatched_at).total_seconds()
    expect(row.locator("a.tip-link")).to_have_text(receipt)
    # Sent → on the screen: the CLI, webhook and expansion, dispatch, then the next poll
    # (1 s apart). Measured, not asserted (timings belong in benchmarks/); see the report.
    print(
        f"on screen {seen_after:.2f} s after the send command started; dispatch {dispatch:.2f} s;"
    )
    print(f"dispatched → on screen {shown:.2f} s")
    assert not too_wide(page, PHONE["width"])
    shot(page, tmp_path, "console-01-live-inbox")

    # Triage on the tip screen: take it, classify it, answer the informant, note; never leave.
    row.locator("a.tip-link").click()
    tip_url = f"{base}/triage/tips/{public_id}"
    expect(page).to_have_url(tip_url)
    assert not too_wide(page, PHONE["width"])
    page.click("#take")
    expect(page.locator(".flash")).to_have_text("Bạn đã nhận xử lý tin báo này.")
    expect(page.locator("#tip-status")).to_have_text("Đang xử lý")
    page.select_option("#triage-category", label="Bạo lực / gây rối")
    page.select_option("#triage-priority", label="Cao")
    page.click("#triage-save")
    expect(page.locator(".flash")).to_have_text("Đã lưu.")
    expect(page.locator("#tip-priority")).to_have_text("Cao")
    page.fill("#reply-text", "Chúng tôi đã cử tổ tuần tra. Bạn có an toàn không?")
    page.click("#form-reply button")
    expect(page.locator(".msg.out .text").last).to_have_text(
        "Chúng tôi đã cử tổ tuần tra. Bạn có an toàn không?"
    )
    page.fill("#note-text", "Tổ 2 đang đến hẻm 12")
    page.click("#form-note button")
    expect(page.locator(".msg.note .text").last).to_have_text("Tổ 2 đang đến hẻm 12")
    expect(page).to_have_url(tip_url)
    expect(page.locator("#unread-count")).to_have_text("")  # read now
    assert not too_wide(page, PHONE["width"])
    shot(page, tmp_path, "console-02-tip-phone")
    # The informant writes again while the tip is on screen: it says so without a reload.
    send(stack, "Bổ sung: họ có khoảng 5 người", "5550001112223334445")
    expect(page.locator("#tip-updated")).to_be_visible(timeout=30_000)
    page.click("#tip-updated a")
    expect(page.locator(".msg.in .text").last).to_have_text("Bổ sung: họ có khoảng 5 người")
    phone.close()


def test_officer_pages_pass_the_accessibility_and_width_checks(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    send(stack, KNIFE_FIGHT, "5550001112223334446")
    deadline = time.monotonic() + 30
    public_id = None
    while public_id is None and time.monotonic() < deadline:
        with runtime.sessions() as session:
            tip = session.scalars(select(Tip).where(Tip.dispatched_at.is_not(None))).first()
            public_id = tip.public_id if tip else None
        time.sleep(0.1)
    assert public_id is not None, "the tip was not dispatched"
    tip_url = f"/triage/tips/{public_id}"
    found: dict[str, list[str]] = {}
    for who, viewport in (("canbo", PHONE), ("chihuy", DESKTOP)):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        # A commander lands on the dashboard (issue 19), an officer on the inbox.
        lands_on = "/triage/dashboard/" if who == "chihuy" else "/triage/"
        log_in(page, base, who, units[f"totp:{who}"], lands_on=lands_on)
        pages = ["/triage/", tip_url, "/triage/notifications", "/triage/canned-replies/"]
        pages += ["/triage/search/?q=dao", f"{tip_url}/related"]  # related tips' own page
        if who == "chihuy":
            pages += ["/triage/dashboard/"]
        for path in pages:
            page.goto(f"{base}{path}")
            found[f"{who} {path}"] = serious_violations(page)
            if viewport is PHONE:
                found[f"{who} {path}"] += too_wide(page, PHONE["width"])
        # The confirmation before a hand-over, and the page after it.
        page.goto(f"{base}{tip_url}")
        if who == "canbo":
            page.select_option("#handover-unit", label="Công an xã Cái Nước")
            page.click("#form-transfer button")
            expect(page.locator("#confirm")).to_be_visible()
            found[f"{who} confirm"] = serious_violations(page)
            page.click("#confirm-yes")
            expect(page.locator("#moved")).to_contain_text("Công an xã Cái Nước")
            found[f"{who} moved"] = serious_violations(page)
            found[f"{who} moved"] += too_wide(page, PHONE["width"])
            shot(page, tmp_path, "console-03-moved")
        else:
            shot(page, tmp_path, "console-04-tip-desktop")
            expect(page.locator(".side-list")).to_be_visible()  # list beside the tip
        context.close()
    assert {k: v for k, v in found.items() if v} == {}
