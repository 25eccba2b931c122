"""Every word Vietnamese in the Vietnamese UI (issue 18): error pages and form validation
messages included, not Werkzeug's or WTForms' English."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.triage_helpers import login

pytestmark = pytest.mark.usefixtures("units")


@pytest.fixture
def officer(client: FlaskClient, units: dict[str, str]) -> FlaskClient:
    login(client, "canbo", units["totp:canbo"])
    return client


@pytest.mark.parametrize(
    ("path", "status", "english", "vietnamese"),
    [
        ("/triage/tips/khongco", 404, "Not Found", "Không tìm thấy"),
        ("/audit/", 403, "Forbidden", "Không có quyền"),
        ("/logout", 405, "Method Not Allowed", "Phương thức"),
    ],
)
def test_error_pages_speak_vietnamese(
    officer: FlaskClient, path: str, status: int, english: str, vietnamese: str
) -> None:
    response = officer.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert vietnamese in html
    assert english not in html and "The requested URL" not in html


def test_form_validation_messages_speak_vietnamese(
    client: FlaskClient, units: dict[str, str]
) -> None:
    login(client, "thanhtra", units["totp:thanhtra"])
    html = client.get("/audit/?since=khong-phai-ngay").get_data(as_text=True)
    assert "Not a valid date value" not in html
    assert "Ngày không hợp lệ" in html


def test_length_messages_keep_their_numbers_in_vietnamese(app: object) -> None:
    """WTForms formats plural messages with its own names (%(max)d) after translating them:
    a too-long receipt code once raised KeyError('max') (a 500) on the duplicate form."""
    from flask import Flask

    from triage.forms import DuplicateForm

    assert isinstance(app, Flask)
    with app.test_request_context("/", method="POST", data={"receipt_code": "X" * 40}):
        form = DuplicateForm(meta={"csrf": False})
        assert not form.validate()
        [message] = form.receipt_code.errors
        assert "16" in message and "ký tự" in message
