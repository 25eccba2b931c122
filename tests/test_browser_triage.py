"""The duty officer's work in a real browser: Playwright driving Debian's Chromium.

Log in with a TOTP code, see the dispatched tip, open it, reply, transfer it; an officer of
another unit can neither see nor open it. Screenshots of the main pages are saved.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect

from tests.browser import log_in, shot, wait_dispatched
from tests.conftest import COMMUNE_OA, Stack
from tipline.runtime import Runtime

TEXT = "Ổ nhóm đánh bạc tại quán nước số 8, đêm nay khoảng 22 giờ"


def test_officer_logs_in_opens_replies_and_transfers(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    sent = stack.tipline(
        "zalo",
        "send",
        "--to",
        stack.base_url,
        "--oa",
        COMMUNE_OA,
        "--user",
        "5550001112223334445",
        "--text",
        TEXT,
    )
    assert sent.returncode == 0, sent.stderr
    tip = wait_dispatched(runtime)
    base = stack.base_url

    officer = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = officer.new_page()
    page.goto(f"{base}/login")
    expect(page.locator("h1")).to_have_text("Đăng nhập")
    shot(page, tmp_path, "01-login")
    log_in(page, base, "canbo", units["totp:canbo"])
    expect(page.locator("a.tip-link")).to_have_text(tip.receipt_code)
    shot(page, tmp_path, "02-inbox")

    page.click("a.tip-link")
    expect(page.locator(".msg.in .text").first).to_have_text(TEXT)
    shot(page, tmp_path, "03-tip")

    page.fill("#reply-text", "Cảm ơn bạn. Bạn có biết biển số xe của họ không?")
    page.click("#form-reply button")
    expect(page.locator(".flash")).to_contain_text("hàng đợi")
    # The worker sends it through the OA; the simulator records what the informant receives.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        calls = httpx.get(f"{base}/_sim/messages").json()
        if any("biển số xe" in (call["text"] or "") for call in calls):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the reply never reached the simulator")
    page.reload()
    expect(page.locator(".msg.out .delivery").last).to_have_text("đã gửi")
    shot(page, tmp_path, "04-replied")

    # Another commune's officer sees nothing and is refused at the URL.
    other = browser.new_context()
    other_page = other.new_page()
    log_in(other_page, base, "canbo2", units["totp:canbo2"])
    expect(other_page.locator("a.tip-link")).to_have_count(0)
    response = other_page.goto(f"{base}/triage/tips/{tip.public_id}")
    assert response is not None and response.status == 403

    # Transfer to Công an xã Cái Nước: now it is theirs, and no longer this officer's.
    page.select_option("#form-transfer select", label="Công an xã Cái Nước")
    page.click("#form-transfer button")
    # Asked first, with what follows; then a page that says where the tip went.
    expect(page.locator("#confirm .consequence")).to_contain_text("Công an xã Cái Nước")
    page.click("#confirm-yes")
    expect(page.locator(".flash")).to_have_text("Đã chuyển đơn vị.")
    expect(page.locator("#moved")).to_contain_text("Công an xã Cái Nước")
    page.goto(f"{base}/triage/")
    expect(page.locator("a.tip-link")).to_have_count(0)
    other_page.goto(f"{base}/triage/")
    expect(other_page.locator("a.tip-link")).to_have_text(tip.receipt_code)
    other_page.click("a.tip-link")
    expect(other_page.locator("#tip-unit")).to_have_text("Công an xã Cái Nước")
    shot(other_page, tmp_path, "05-transferred")
    officer.close()
    other.close()
