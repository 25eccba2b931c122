"""The web form in a real browser: report without Zalo, the script solves the proof of work,
the receipt is shown once, the officer answers in the triage UI, the informant reads the
answer at /tra-cuu and replies."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from tests.browser import log_in, shot, wait_dispatched
from tests.conftest import Stack
from tests.test_media import jpeg_with_gps, wait_for
from tipline.models import Attachment, Unit
from tipline.runtime import Runtime

TEXT = "Có nhóm thanh niên tụ tập đua xe trái phép mỗi tối thứ bảy ở đường ven sông"
REPLY = "Cảm ơn bạn. Họ thường tụ tập lúc mấy giờ?"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TIPLINE_POW_BITS": "12"}


def test_informant_reports_on_the_web_and_follows_up(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    informant = browser.new_context(viewport={"width": 390, "height": 844})
    page = informant.new_page()
    page.goto(f"{base}/bao-tin?don-vi={unit}")
    expect(page.locator("h1")).to_have_text("Báo tin cho công an")
    page.fill("#text", TEXT)
    photo = tmp_path / "IMG_2041.jpg"
    photo.write_bytes(jpeg_with_gps())
    page.set_input_files("#files", str(photo))
    expect(page.locator("#send")).to_be_enabled(timeout=30_000)  # the proof of work is done
    shot(page, tmp_path, "web-01-report")
    page.click("#send")
    code = page.locator("#receipt-code").inner_text()
    passphrase = page.locator("#passphrase").inner_text()
    assert code.startswith("TL-") and len(passphrase.split()) == 7
    shot(page, tmp_path, "web-02-receipt")

    tip = wait_dispatched(runtime)
    assert tip.channel == "web" and tip.receipt_code == code
    officer = browser.new_context().new_page()
    log_in(officer, base, "canbo", units["totp:canbo"])
    officer.click("a.tip-link")
    expect(officer.locator(".msg.in .text").first).to_have_text(TEXT)
    # The photo, cleaned by the media worker, is offered for download.
    wait_for(runtime, lambda db: db.scalars(select(Attachment.state)).first() == "stored")
    officer.reload()
    link = officer.locator(".attachment-stored a")
    expect(link).to_be_visible(timeout=30_000)
    with officer.expect_download() as download:
        link.click()
    cleaned = Image.open(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert cleaned.format == "JPEG" and dict(cleaned.getexif()) == {}
    officer.fill("#reply-text", REPLY)
    officer.click("#form-reply button")

    page.click("#to-lookup")
    page.fill("#code", code)
    page.fill("#passphrase", passphrase)
    page.click("#look-up")
    expect(page.locator("#conversation")).to_contain_text(TEXT)
    expect(page.locator("#conversation")).to_contain_text(REPLY)
    page.fill("#answer", "Khoảng 21 giờ")
    page.click("#send-answer")
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#conversation")).to_contain_text("Khoảng 21 giờ")
    shot(page, tmp_path, "web-03-follow-up")
    informant.close()
