"""`/admin` after the national import (3,355 units): paged, searchable, a bounded number of SQL
statements and a page of bounded size, whatever the number of units and accounts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from tests.test_admin import admin  # noqa: F401  # the logged-in admin fixture
from tipline.models import Unit
from tipline.routing.importer import import_units
from tipline.runtime import Runtime

PAGE_STATEMENTS = 25  # the page's own queries plus login, session and audit look-ups
PAGE_BYTES = 200_000


@contextmanager
def counted(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(runtime.engine, "before_cursor_execute", note)


def rows(page: str, kind: str) -> list[str]:
    return re.findall(rf'<tr id="{kind}-([^"]+)"', page)


def test_the_admin_pages_stay_small_after_the_national_import(
    admin: FlaskClient,  # noqa: F811
    runtime: Runtime,
) -> None:
    with runtime.sessions() as session, session.begin():
        import_units(session)
    with runtime.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Unit))
    assert total is not None and total >= 3_355

    with counted(runtime) as statements:
        answer = admin.get("/admin/")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert len(statements) <= PAGE_STATEMENTS, f"{len(statements)} statements"
    assert len(answer.get_data()) <= PAGE_BYTES, f"{len(answer.get_data())} bytes"
    first = rows(page, "unit")
    assert 0 < len(first) <= 50
    assert f"{total:,}".replace(",", ".") in page or str(total) in page  # "3.355 units"

    # The last page, and a page past the end (the last one again), cost the same.
    pages = -(-total // 50)
    with counted(runtime) as statements:
        last = admin.get(f"/admin/?units_page={pages}").get_data(as_text=True)
    assert len(statements) <= PAGE_STATEMENTS
    assert rows(last, "unit") and set(rows(last, "unit")).isdisjoint(first)
    assert rows(admin.get("/admin/?units_page=9999").get_data(as_text=True), "unit") == rows(
        last, "unit"
    )
    assert admin.get("/admin/?units_page=abc").status_code == 200  # bad input: the first page

    # Search by name (any case) or by code.
    found = admin.get("/admin/?units_q=ba+đình").get_data(as_text=True)
    assert "Công an phường Ba Đình" in found and len(rows(found, "unit")) < 10
    by_code = admin.get("/admin/?units_q=v2025:00004").get_data(as_text=True)
    assert "Công an phường Ba Đình" in by_code
    assert "Không có đơn vị nào" in admin.get("/admin/?units_q=zzzz").get_data(as_text=True)

    # Accounts: paged and searchable the same way.
    accounts = admin.get("/admin/?accounts_q=canbo2").get_data(as_text=True)
    assert rows(accounts, "account") == ["canbo2"]

    # The new-account form names its unit by code (no 3,355-option list) and refuses an
    # unknown one on the form.
    assert "<option value=\"v2025:00004\"" not in page


def test_a_new_account_of_an_unknown_unit_code_is_refused_on_the_form(
    admin: FlaskClient,  # noqa: F811
    runtime: Runtime,
) -> None:
    from tests.triage_helpers import post_form
    from tipline.models import Officer

    fields = {"username": "moi", "display_name": "Cán bộ mới", "role": "officer"}
    answer = post_form(admin, "/admin/", "/admin/officers", {**fields, "unit": "v2025:99999"})
    assert answer.status_code == 400
    assert "Không có đơn vị nào mang mã này." in answer.get_data(as_text=True)
    with runtime.sessions() as session:
        assert session.scalar(select(Officer).where(Officer.username == "moi")) is None
    answer = post_form(admin, "/admin/", "/admin/officers", {**fields, "unit": "v2025:32134"})
    assert answer.status_code == 200
