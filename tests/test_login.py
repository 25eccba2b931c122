"""The staff login under attack: no account named, none locked out, no code used twice.

- A refusal costs the same Argon2id run (counted by cost, never timed) and reads the same,
  whether or not the account exists, at /login and at /login/recover.
"""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from keys import KdfCost
from tests.conftest import OFFICER_PASSWORD
from tests.triage_helpers import csrf_from, login, totp_code
from tipline.officers import NewAccount, add_officer
from tipline.runtime import Runtime

# Not FAST_TEST_COST: a cost no fixed decoy happens to share.
COST = KdfCost(time_cost=2, memory_kib=16, parallelism=1)
TOKEN = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+(")')


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
