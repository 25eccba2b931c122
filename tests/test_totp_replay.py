"""A TOTP code lets one login in, even when two use it at the same moment (on PostgreSQL).

The replay check read the last step used, compared, and wrote the new one at commit: two
READ COMMITTED transactions that both read before either wrote both got in. It is now one
conditional UPDATE (``… WHERE totp_last_step < :step``) whose row count decides.

``database_url`` is overridden here, as in tests/faults/: the race is PostgreSQL's (SQLite's
writers are serialised by its database lock), so this runs there whatever the run's backend.
Determinism without timing: both requests wait for each other right after their password
check, so both have read the account before either claims the code.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import KdfCost, password
from tests.conftest import OFFICER_PASSWORD
from tests.postgres_server import PostgresServer
from tests.triage_helpers import csrf_from, totp_code
from tipline.migrate import upgrade
from tipline.models import AuditEvent
from tipline.runtime import Runtime


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    name = "totp_" + uuid.uuid4().hex[:8]
    url = postgres.create_database(name)
    upgrade(url)
    yield url
    postgres.drop_database(name)


@pytest.fixture
def side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two password checks meet before either goes on (a barrier, not a sleep)."""
    barrier = threading.Barrier(2, timeout=60)  # a safety net against a hang, not a measure
    verify = password._verify

    def verify_then_wait(stored_hash: str, given: str, cost: KdfCost) -> bool:
        result = verify(stored_hash, given, cost)
        barrier.wait()
        return result

    monkeypatch.setattr(password, "_verify", verify_then_wait)


@pytest.mark.usefixtures("side_by_side")
def test_two_logins_with_one_code_let_exactly_one_in(
    app: Flask, runtime: Runtime, units: dict[str, str]
) -> None:
    assert runtime.engine.dialect.name == "postgresql"
    secret = units["totp:canbo"]
    clients = [app.test_client(), app.test_client()]
    tokens = [csrf_from(c.get("/login").get_data(as_text=True)) for c in clients]
    code = totp_code(secret)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def log_in(client: FlaskClient, token: str) -> None:
        try:
            response = client.post(
                "/login",
                data={
                    "csrf_token": token,
                    "username": "canbo",
                    "password": OFFICER_PASSWORD,
                    "code": code,
                },
            )
            statuses.append(response.status_code)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=log_in, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(statuses) == [302, 401]
    with runtime.sessions() as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        logins = [e.action for e in events if e.action in ("login", "login_failed")]
        refused = [e.detail.get("reason") for e in events if e.action == "login_failed"]
    assert sorted(logins) == ["login", "login_failed"]
    assert refused == ["totp"]
