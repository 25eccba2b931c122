"""Browser tests' shared parts: Playwright driving Debian's Chromium, as a person would."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyotp
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.conftest import OFFICER_PASSWORD
from tipline.models import Tip
from tipline.runtime import Runtime

CHROMIUM = "/usr/bin/chromium"
# Headless as root, and quiet: this machine's network reaches nothing outside.
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


def shot(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    """A screenshot in the test's tmp dir, also kept in tests/screenshots/ (not committed)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    SCREENSHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)


def log_in(page: Page, base: str, username: str, secret: str, lands_on: str = "/triage/") -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", OFFICER_PASSWORD)
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("#login")
    expect(page).to_have_url(f"{base}{lands_on}")


def wait_dispatched(runtime: Runtime, timeout: float = 30) -> Tip:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            tip = session.scalars(select(Tip)).first()
            if tip is not None and tip.dispatched_at is not None:
                return tip
        time.sleep(0.1)
    raise AssertionError("the tip was not dispatched")
