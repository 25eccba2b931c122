"""Logging in through the real forms (CSRF token and TOTP code included) for UI tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import OFFICER_PASSWORD

CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def totp_code(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * offset_steps))


def login(
    client: FlaskClient,
    username: str,
    secret: str,
    password: str = OFFICER_PASSWORD,
    code: str | None = None,
) -> TestResponse:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "username": username,
            "password": password,
            "code": code if code is not None else totp_code(secret),
        },
    )


def post_form(
    client: FlaskClient, page_url: str, action: str, data: dict[str, str]
) -> TestResponse:
    """Post ``data`` to ``action`` with the CSRF token of the page a person would be on."""
    page = client.get(page_url)
    return client.post(action, data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data})


def approve_all(holder: FlaskClient) -> list[str]:
    """As a logged-in key holder: approve every grant request on the approvals page; the
    request ids approved (tipline.grants: no unit key without a key holder's approval)."""
    page = holder.get("/triage/grants/").get_data(as_text=True)
    ids = re.findall(r'action="/triage/grants/([a-z0-9]+)/approve"', page)
    for request_id in ids:
        response = holder.post(
            f"/triage/grants/{request_id}/approve", data={"csrf_token": csrf_from(page)}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
    return ids
