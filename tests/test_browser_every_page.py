"""Every page people see, checked as users check (issue 18): an axe-core scan reports no serious
or critical violation, and on a phone (390 × 844) no page is wider than the screen.

axe-core comes from the axe-playwright-python wheel and is injected by Playwright; nothing is
fetched from a CDN. The officers' own pages (and the hand-over pages) are checked in
tests/test_browser_console.py, the related tips and the duplicate's confirmation in
tests/test_browser_related.py; this covers the rest: the public pages, the login, the
auditor's and the admin's pages, the commander's dashboard and a poster, and a tip page with
its map and its related-tip suggestions loaded (issue 18).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser
from sqlalchemy import select

from tests.browser import log_in, wait_dispatched
from tests.conftest import COMMUNE_OA, OFFICER_PASSWORD, Stack
from tests.test_browser_console import PHONE, serious_violations, too_wide
from tipline.models import Officer, Unit
from tipline.officers import add_officer
from tipline.runtime import Runtime

PUBLIC = ["/login", "/login/recover", "/bao-tin", "/tra-cuu", "/khong-co-trang-nay"]  # and a 404


def test_every_page_passes_the_accessibility_and_width_checks(
    browser: Browser, stack: Stack, runtime: Runtime, units: dict[str, str], tmp_path: Path
) -> None:
    base = stack.base_url
    with runtime.sessions() as session, session.begin():
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
        units["totp:quantri"] = admin.totp_secret
    with runtime.sessions() as session:
        canbo = session.scalars(select(Officer.public_id).where(Officer.username == "canbo")).one()
        commune = session.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    # A tip with a plate and a shared point: its page draws the map and offers suggestions.
    for what in (["--text", "Xe 69A-123.45 chở hàng trộm"], ["--location", "9.0973,105.083"]):
        sent = stack.tipline(
            "zalo", "send", "--to", base, "--oa", COMMUNE_OA, "--user", "5550009", *what
        )
        assert sent.returncode == 0, sent.stderr
    tip = f"/triage/tips/{wait_dispatched(runtime).public_id}"
    by_role = {
        None: PUBLIC,
        "canbo": [tip, f"{tip}/related"],
        "thanhtra": ["/audit/", "/audit/anomalies", "/audit/verify", f"/audit/officers/{canbo}"],
        "chihuy": ["/triage/dashboard/", f"/triage/units/{commune}/poster"],
        "quantri": ["/admin/", "/admin/zalo/", "/admin/zalo-events"],
    }
    found: dict[str, list[str]] = {}
    for who, paths in by_role.items():
        context = browser.new_context(viewport=PHONE)
        page = context.new_page()
        if who is not None:
            landing = {"thanhtra": "/audit/", "quantri": "/admin/", "chihuy": "/triage/dashboard/"}
            lands_on = landing.get(who, "/triage/")
            log_in(page, base, who, units[f"totp:{who}"], lands_on=lands_on)
        for path in paths:
            page.goto(f"{base}{path}")
            found[f"{who or 'nobody'} {path}"] = serious_violations(page) + too_wide(
                page, PHONE["width"]
            )
        if who == "canbo":  # the suggestions loaded into the tip page
            page.goto(f"{base}{tip}")
            page.click("#related-find")
            page.wait_for_selector("#related-list")
            found["canbo tip with suggestions"] = serious_violations(page) + too_wide(
                page, PHONE["width"]
            )
        context.close()
    assert {k: v for k, v in found.items() if v} == {}
