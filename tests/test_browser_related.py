"""Related tips, the tip's map and the keyboard shortcuts in Chromium (issue 18).

On a phone: the tip's place is drawn from the ward boundaries with the shared point; asked
for, the suggestions (the same plate written another way) load into the page; the officer
links the two tips, then marks one a duplicate of the other through a confirmation that says
what follows. Each state passes the axe scan and fits the screen. On a desktop: j/k move
through the tips, t takes the tip, r goes to the reply, ? shows the list; nothing happens
while typing in a field.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, expect
from sqlalchemy import select

from tests.browser import log_in, shot
from tests.conftest import COMMUNE_OA, Stack
from tests.test_browser_console import DESKTOP, PHONE, serious_violations, too_wide
from tipline.models import Tip
from tipline.runtime import Runtime

FIRST = "Xe máy biển 69A-123.45 chở hàng trộm, đang đậu ở ấp 3"
SECOND = "Thấy lại chiếc xe 69a 12345 ở chợ, người lái rất hung dữ"


def zalo(stack: Stack, user: str, *what: str) -> None:
    sent = stack.tipline(
        "zalo", "send", "--to", stack.base_url, "--oa", COMMUNE_OA, "--user", user, *what
    )
    assert sent.returncode == 0, sent.stderr


def dispatched(runtime: Runtime, count: int) -> list[tuple[str, str]]:
    """(public id, receipt code) of the first ``count`` tips once all are dispatched."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            tips = session.scalars(select(Tip).order_by(Tip.id)).all()
            if len(tips) >= count and all(t.dispatched_at for t in tips):
                return [(t.public_id, t.receipt_code) for t in tips]
        time.sleep(0.1)
    raise AssertionError("the tips were not dispatched")


def test_related_tips_and_the_map_on_a_phone_and_shortcuts_on_a_desktop(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    zalo(stack, "5550001112223330001", "--text", FIRST)
    zalo(stack, "5550001112223330001", "--location", "9.0973,105.083")
    dispatched(runtime, 1)
    zalo(stack, "5550001112223330002", "--text", SECOND)
    zalo(stack, "5550001112223330003", "--text", "Có đánh bạc ở ấp 5 mỗi tối")
    (first, first_code), (second, second_code), _third = dispatched(runtime, 3)
    found: dict[str, list[str]] = {}

    phone = browser.new_context(viewport=PHONE)
    page = phone.new_page()
    log_in(page, base, "canbo", units["totp:canbo"])
    page.goto(f"{base}/triage/tips/{first}")
    expect(page.locator(".msg.in").last).to_contain_text("9.0973")
    map_ = page.locator("#tip-map")
    expect(map_).to_be_visible()
    expect(page.locator("#shared-point")).to_have_count(1)
    expect(page.locator("#place-caption")).to_contain_text("Công an xã Lương Thế Trân")
    assert map_.bounding_box()["width"] <= PHONE["width"]  # type: ignore[index]
    found["tip with map"] = serious_violations(page) + too_wide(page, PHONE["width"])
    shot(page, tmp_path, "related-01-map-phone")

    # The newer tip: its plate, written another way, finds the first one when asked.
    page.goto(f"{base}/triage/tips/{second}")
    expect(page.locator("#tip-numbers")).to_contain_text("69a 12345")
    expect(page.locator("#related-results .suggestion")).to_have_count(0)  # not until asked
    page.click("#related-find")
    suggestion = page.locator(f'#related-results .suggestion[data-tip="{first}"]')
    expect(suggestion).to_contain_text(first_code)
    expect(suggestion).to_contain_text("69a 12345")
    expect(page).to_have_url(f"{base}/triage/tips/{second}")  # in place, no navigation
    found["suggestions"] = serious_violations(page) + too_wide(page, PHONE["width"])
    shot(page, tmp_path, "related-02-suggestions-phone")

    suggestion.locator("button.suggestion-link").click()
    expect(page.locator(".flash")).to_have_text(f"Đã liên kết với {first_code}.")
    expect(page.locator("#tip-links")).to_contain_text(first_code)
    page.goto(f"{base}/triage/tips/{first}")
    expect(page.locator("#tip-links")).to_contain_text(second_code)  # both ends
    found["linked"] = serious_violations(page) + too_wide(page, PHONE["width"])

    # One click from a suggestion: a question first, saying what follows.
    page.goto(f"{base}/triage/tips/{second}")
    page.click("#related-find")
    page.locator(f'.suggestion[data-tip="{first}"] button.suggestion-duplicate').click()
    expect(page.locator("#confirm h1")).to_have_text(
        f"Kết thúc tin báo này vì trùng lặp với {first_code}?"
    )
    expect(page.locator("#confirm .consequence")).to_contain_text("rời khỏi hộp tin báo")
    found["confirm duplicate"] = serious_violations(page) + too_wide(page, PHONE["width"])
    page.click("#confirm-yes")
    expect(page.locator("#tip-status")).to_have_text("Trùng lặp")
    expect(page.locator(".meta").first).to_contain_text(first_code)

    # The same officer at a desk (one login: a TOTP code is used once).
    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/triage/")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_have_attribute("open", "")
    page.keyboard.press("j")
    expect(page.locator("#inbox-tips a.tip-link").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#tip-main")).to_be_visible()
    top = page.locator(".side-list a").first.get_attribute("href")  # the list beside the tip
    page.goto(f"{base}{top}")
    current = page.url
    page.keyboard.press("j")
    expect(page).not_to_have_url(current)
    page.wait_for_load_state("load")
    page.keyboard.press("k")
    expect(page).to_have_url(current)
    page.wait_for_load_state("load")  # the shortcuts' script runs once the page has loaded
    page.keyboard.press("r")
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.type("j k t")  # typed into the reply: no shortcut fires
    expect(page).to_have_url(current)
    expect(page.locator("#reply-text")).to_have_value("j k t")
    page.locator("#reply-text").blur()
    page.keyboard.press("t")
    expect(page.locator(".flash")).to_have_text("Bạn đã nhận xử lý tin báo này.")
    found["desktop tip"] = serious_violations(page)
    shot(page, tmp_path, "related-03-tip-desktop")
    phone.close()
    assert {k: v for k, v in found.items() if v} == {}
