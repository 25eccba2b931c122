"""The staff login under attack: no account named, none locked out, no code used twice.

- A refusal costs the same Argon2id run (counted by cost, never timed) and reads the same,
  whether or not the account exists, at /login and at /login/recover.
- Failures slow down who fails (delays that double, per account and address, per address, per
  account for addresses that failed on it), never lock the account: the officer with the
  right password and code gets in, and recovery works, whatever others did. Throttled tries
  cost no Argon2id run and do not make the wait longer. Delays are tested by moving the
  runtime's clock, never by waiting.
- An IPv6 /64 is one client for the login limits.
- Sprays are flagged for the auditor: one address failing on many accounts, one account
  failing from many addresses.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from keys import KdfCost
from tests.conftest import OFFICER_PASSWORD, Clock
from tests.triage_helpers import csrf_from, login, totp_code
from tipline import audit
from tipline.models import Officer, utcnow
from tipline.officers import NewAccount, add_officer
from tipline.runtime import Runtime

# Not FAST_TEST_COST: a cost no fixed decoy happens to share.
COST = KdfCost(time_cost=2, memory_kib=16, parallelism=1)
TOKEN = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+(")')
WRONG = "not the password"
ATTACKER = "198.51.100.66"
OFFICE = "203.0.113.5"


def browser_at(app: Flask, address: str) -> FlaskClient:
    """A browser of its own, at ``address``."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def account(runtime: Runtime, units: dict[str, str]) -> NewAccount:
    """An officer whose password and recovery code are wrapped at the configured cost."""
    runtime.config = runtime.config.with_overrides(kdf_cost=COST)
    with runtime.sessions() as db, db.begin():
        new = add_officer(
            db,
            username="trucban",
            display_name="Trực ban",
            role="officer",
            unit_code="v2025:32134",
            password=OFFICER_PASSWORD,
            cost=COST,
            totp_confirmed=True,
        )
        db.expunge(new.officer)
    return new


def page_text(response: TestResponse, username: str) -> str:
    """The page with what legitimately differs taken out: the name typed, the form token."""
    return TOKEN.sub(r"\1…\2", response.get_data(as_text=True)).replace(username, "NAME")


def recover(client: FlaskClient, username: str, recovery_code: str, code: str) -> TestResponse:
    page = client.get("/login/recover").get_data(as_text=True)
    return client.post(
        "/login/recover",
        data={
            "csrf_token": csrf_from(page),
            "username": username,
            "recovery_code": recovery_code,
            "code": code,
            "new_password": "a new password, long enough",
        },
    )


def test_an_unknown_username_costs_and_reads_as_a_wrong_password(
    client: FlaskClient, account: NewAccount, argon2_runs: list[KdfCost]
) -> None:
    """Unknown accounts answered in a few ms against hundreds for real ones: the decoy hash
    ran at Argon2's minimum cost. Now both run once at the configured cost."""
    secret = account.totp_secret
    known = login(client, "trucban", secret, password="not the password")
    known_runs = list(argon2_runs)
    argon2_runs.clear()
    unknown = login(client, "khongco", secret, password="not the password")
    assert known_runs == [COST]
    assert argon2_runs == [COST]
    assert known.status_code == unknown.status_code == 401
    assert page_text(known, "trucban") == page_text(unknown, "khongco")


def test_recovery_for_an_unknown_username_costs_and_reads_the_same(
    client: FlaskClient, account: NewAccount, argon2_runs: list[KdfCost]
) -> None:
    wrong_code = "ABCDE-FGHJK-MNPQR-STVWX-YZ012"
    code = totp_code(account.totp_secret)
    known = recover(client, "trucban", wrong_code, code)
    known_runs = list(argon2_runs)
    argon2_runs.clear()
    unknown = recover(client, "khongco", wrong_code, code)
    assert known_runs == [COST]
    assert argon2_runs == [COST]
    assert known.status_code == unknown.status_code == 401
    assert page_text(known, "trucban") == page_text(unknown, "khongco")


def test_failures_delay_the_address_that_fails_and_never_lock_the_account(
    app: Flask, units: dict[str, str], clock: Clock, argon2_runs: list[KdfCost]
) -> None:
    """Five failures locked the account for 15 minutes, longer with every try during the lock,
    whoever made them: anyone could keep a duty officer out for good."""
    secret = units["totp:canbo"]
    attacker = browser_at(app, ATTACKER)
    assert [login(attacker, "canbo", secret, password=WRONG).status_code for _ in range(3)] == [
        401
    ] * 3
    argon2_runs.clear()
    waiting = login(attacker, "canbo", secret, password=WRONG)
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "2"
    assert "2 giây" in waiting.get_data(as_text=True)
    assert argon2_runs == []  # refused before any password check
    clock.advance(1)
    # Trying during the wait does not make it longer, and even the right password waits.
    assert login(attacker, "canbo", secret).headers["Retry-After"] == "1"
    clock.advance(1)
    assert login(attacker, "canbo", secret, password=WRONG).status_code == 401
    assert login(attacker, "canbo", secret, password=WRONG).headers["Retry-After"] == "4"
    # Meanwhile the officer, elsewhere, is not kept out at all.
    assert login(browser_at(app, OFFICE), "canbo", secret).status_code == 302
    # And the attacker's address gets in with the right password once its wait is over.
    clock.advance(4)
    assert login(attacker, "canbo", secret, code=totp_code(secret, 1)).status_code == 302


def test_a_flood_of_failures_from_many_addresses_does_not_keep_the_officer_out(
    app: Flask, units: dict[str, str], clock: Clock
) -> None:
    secret = units["totp:canbo"]
    statuses = []
    for n in range(10):
        attacker = browser_at(app, f"198.51.100.{n + 1}")
        statuses += [login(attacker, "canbo", secret, password=WRONG).status_code for _ in range(3)]
    # Three addresses try three times each; once the account has ten failures, each new
    # address gets one try, then waits for the account's delay.
    assert statuses.count(401) == 9 + 7 and statuses.count(429) == 30 - 16
    # An address that has not failed on the account passes its limit: the officer gets in.
    assert login(browser_at(app, OFFICE), "canbo", secret).status_code == 302


def test_a_browser_that_logged_in_before_is_not_kept_out_by_others_at_its_address(
    app: Flask, units: dict[str, str], clock: Clock
) -> None:
    """Behind one address (a station's NAT) an attacker's failures were the officer's too."""
    secret = units["totp:canbo"]
    officer = browser_at(app, OFFICE)
    assert login(officer, "canbo", secret).status_code == 302
    known = officer.get_cookie("tipline_known", path="/login")
    assert known is not None and known.http_only and known.max_age is not None
    page = officer.get("/triage/").get_data(as_text=True)
    officer.post("/logout", data={"csrf_token": csrf_from(page)})
    colleague = browser_at(app, OFFICE)  # another browser at the same address
    for username in ("canbo", "canbo2"):
        for _ in range(5):
            login(colleague, username, units[f"totp:{username}"], password=WRONG)
    assert login(colleague, "canbo", secret, code=totp_code(secret, 1)).status_code == 429
    # The officer's own mistakes still slow the officer's browser down ...
    assert login(officer, "canbo", secret, password=WRONG).status_code == 401
    # ... but not anyone else's.
    assert login(officer, "canbo", secret, code=totp_code(secret, 1)).status_code == 302
    # The cookie names this account only: for another username the browser is anyone.
    other = browser_at(app, OFFICE)
    other.set_cookie("tipline_known", known.value, path="/login")
    assert login(other, "canbo2", units["totp:canbo2"]).status_code == 429


def test_recovery_works_while_the_account_is_throttled(
    app: Flask, account: NewAccount, clock: Clock
) -> None:
    """Recovery was refused while the account was locked."""
    secret = account.totp_secret
    officer = browser_at(app, OFFICE)
    for _ in range(5):
        login(officer, "trucban", secret, password=WRONG)
    assert login(officer, "trucban", secret).status_code == 429  # its own failures: a wait
    recovered = recover(officer, "trucban", account.recovery_code, totp_code(secret))
    assert recovered.status_code == 200
    assert "a new password, long enough" not in recovered.get_data(as_text=True)
    assert recovered.headers["Cache-Control"] == "no-store"
    # Recovery proved who this is: the new password gets in from here at once.
    welcome = login(officer, "trucban", secret, password="a new password, long enough")
    assert welcome.status_code == 401  # that code was used by the recovery
    welcome = login(
        officer,
        "trucban",
        secret,
        password="a new password, long enough",
        code=totp_code(secret, 1),
    )
    assert welcome.status_code == 302


def test_an_ipv6_64_is_one_client_for_the_login_limits(app: Flask, units: dict[str, str]) -> None:
    """Limits counted per full address: a /64 is 2^64 fresh addresses to one customer."""

    def empty_post(address: str) -> int:
        browser = browser_at(app, address)
        token = csrf_from(browser.get("/login").get_data(as_text=True))
        return browser.post("/login", data={"csrf_token": token}).status_code

    assert [empty_post(f"2001:db8:1:2::{n + 1:x}") for n in range(20)] == [400] * 20
    assert empty_post("2001:db8:1:2:ffff::1") == 429  # the same /64: the 21st this minute
    assert empty_post("2001:db8:1:3::1") == 400  # the next /64 is another client


def test_sprays_are_flagged_for_the_auditor(
    app: Flask, runtime: Runtime, units: dict[str, str]
) -> None:
    sprayer = browser_at(app, ATTACKER)
    for username in ("canbo", "canbo2", "chihuy", "thanhtra"):
        assert (
            login(sprayer, username, units[f"totp:{username}"], password=WRONG).status_code == 401
        )
    for n in range(3):
        swarm = browser_at(app, f"198.51.100.{n + 10}")
        assert login(swarm, "canbo2", units["totp:canbo2"], password=WRONG).status_code == 401
    with runtime.sessions() as db:
        canbo2 = db.scalars(select(Officer.public_id).where(Officer.username == "canbo2")).one()
        found = audit.anomalies(db, since=utcnow() - timedelta(hours=1))
    flags = {(a.kind, a.client_address, a.object_id, a.count) for a in found}
    assert (audit.LOGIN_SPRAY, ATTACKER, None, 4) in flags
    assert (audit.LOGIN_SWARM, None, canbo2, 4) in flags
    auditor = browser_at(app, OFFICE)
    assert login(auditor, "thanhtra", units["totp:thanhtra"]).status_code == 302
    panel = auditor.get("/audit/anomalies").get_data(as_text=True)
    assert "Đăng nhập sai vào nhiều tài khoản từ một địa chỉ" in panel
    assert "Đăng nhập sai vào một tài khoản từ nhiều địa chỉ" in panel
