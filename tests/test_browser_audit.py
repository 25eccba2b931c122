"""The auditor's workspace in a real browser: Playwright driving Debian's Chromium.

A tip arrives through the simulator and is dispatched by the worker; an officer opens it. The
auditor logs in with a TOTP code, filters the log, opens the officer's activity and the
anomaly panel, verifies the chain (intact, then broken after a row is edited by SQL), and
exports CSV. The pages run under the app's CSP (no inline script or style) and fit a phone.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from sqlalchemy import select

from tests.browser import log_in, shot, wait_dispatched
from tests.conftest import COMMUNE_OA, Stack
from tests.databases import raw
from tipline.audit import actions
from tipline.models import AuditEvent
from tipline.runtime import Runtime

TEXT = "Có người mua bán ma túy ở chợ đêm, số điện thoại 0987654321"
INFORMANT = "5550001112223339999"


def wait_for_event(runtime: Runtime, action: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not audit_events(runtime, action):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {action} event")
        time.sleep(0.1)


def audit_events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_auditor_filters_verifies_and_exports(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    sent = stack.tipline(
        "zalo", "send", "--to", base, "--oa", COMMUNE_OA, "--user", INFORMANT, "--text", TEXT
    )
    assert sent.returncode == 0, sent.stderr
    tip = wait_dispatched(runtime)
    wait_for_event(runtime, actions.REPLY_DELIVERED)  # the receipt, sent by the worker

    # An officer opens the tip: the event the auditor will look for.
    officer = browser.new_context()
    officer_page = officer.new_page()
    log_in(officer_page, base, "canbo", units["totp:canbo"], "/triage/")
    officer_page.click("a.tip-link")
    expect(officer_page.locator(".msg.in .text").first).to_have_text(TEXT)
    officer.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    csp_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            csp_errors.append(message.text)

    page.on("console", on_console)
    log_in(page, base, "thanhtra", units["totp:thanhtra"], "/audit/")
    expect(page.locator("h1")).to_have_text("Nhật ký kiểm tra")
    expect(page.locator("#nav-audit")).to_be_visible()
    expect(page.locator("a[href*='/triage/tips/']")).to_have_count(0)
    expect(page.locator("tr.a-tip_open")).to_have_count(1)
    shot(page, tmp_path, "audit-01-log")

    # Filter: the officer's tip opens.
    page.fill("#officer", "canbo")
    page.select_option("#action", "tip_open")
    page.click("#filter")
    expect(page).to_have_url(re.compile(r".*/audit/\?officer=canbo&.*action=tip_open.*"))
    rows = page.locator("tbody tr.event")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.action-name")).to_have_text("Mở tin báo")
    # The tip is named by its receipt code, as a citizen's complaint names it (issue 19).
    expect(rows.first.locator("a.object-link")).to_have_text(tip.receipt_code)
    shot(page, tmp_path, "audit-02-filtered")

    # One tip's whole history, by clicking its receipt code.
    rows.first.locator("a.object-link").click()
    expect(page.locator("h1")).to_contain_text(tip.receipt_code)
    # Received, dispatched, the receipt delivered, opened, and this very view: oldest first.
    expect(page.locator("tbody tr.event")).to_have_count(5)
    expect(page.locator("tbody tr.event").first).to_have_class(re.compile("a-tip_received"))
    expect(page.locator("body")).not_to_contain_text("ma túy")

    # The officer's activity view.
    page.locator("a.officer-link", has_text="canbo").first.click()
    expect(page.locator("h1")).to_contain_text("Canbo")
    expect(page.locator("#action-counts")).to_contain_text("Mở tin báo")
    shot(page, tmp_path, "audit-03-officer")

    # The anomaly panel.
    page.click("#nav-anomalies")
    expect(page.locator("h1")).to_have_text("Bất thường")
    expect(page.locator("#anomalies")).to_be_visible()
    shot(page, tmp_path, "audit-04-anomalies")

    # Verify: intact.
    page.click("#nav-verify")
    page.click("#verify")
    expect(page.locator("#verify-result")).to_have_class("card verdict ok")
    expect(page.locator("#verify-result h2")).to_have_text("Chuỗi nhật ký nguyên vẹn.")
    shot(page, tmp_path, "audit-05-verify-ok")

    # Someone with the database edits the dispatch event; the button finds it.
    dispatched = audit_events(runtime, actions.TIP_DISPATCHED)[0]
    with raw(runtime.config.database_url) as db:
        db.execute(
            "UPDATE audit_events SET unit_code = 'v2025:32128' WHERE seq = ?", (dispatched.seq,)
        )
    page.click("#verify")
    result = page.locator("#verify-result")
    expect(result).to_have_class("card verdict broken")
    expect(result.locator("h2")).to_contain_text(f"#{dispatched.seq}")
    expect(result).to_contain_text(dispatched.public_id)
    expect(page.locator("#bad-event")).to_contain_text("v2025:32128")
    shot(page, tmp_path, "audit-06-verify-broken")
    assert [e.outcome for e in audit_events(runtime, actions.AUDIT_VERIFY)] == ["ok", "broken"]

    # Export the filtered list: a download, audited, with no tip content in it.
    page.goto(f"{base}/audit/?tip={tip.public_id}")
    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    assert download.suggested_filename.startswith("tipline-audit-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    text = saved.read_text(encoding="utf-8-sig")
    listed = list(csv.DictReader(io.StringIO(text)))
    assert [r["action"] for r in listed] == [
        "tip_received",
        "tip_dispatched",
        "reply_delivered",
        "tip_open",
        "audit_view",  # the auditor's look at the tip's history is an event on the tip
    ]
    for secret in ("ma túy", "0987654321", INFORMANT):
        assert secret not in text
    exports = audit_events(runtime, actions.AUDIT_EXPORT)
    assert len(exports) == 1 and exports[0].actor_name == "thanhtra"
    assert exports[0].detail == {"object": tip.public_id, "rows": "5"}

    # On a phone: the same list, readable without sideways scrolling.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
    )
    phone_page = phone.new_page()
    phone_page.on("console", on_console)
    phone_page.goto(f"{base}/audit/")
    expect(phone_page.locator("tbody tr.event").first).to_be_visible()
    assert fits_the_screen(phone_page)
    shot(phone_page, tmp_path, "audit-07-phone", full_page=False)
    phone_page.goto(f"{base}/audit/anomalies")
    assert fits_the_screen(phone_page)
    phone.close()

    # Auditors get no tip: the tip page is refused.
    response = page.goto(f"{base}/triage/tips/{tip.public_id}")
    assert response is not None and response.status == 403
    context.close()
    assert csp_errors == []
