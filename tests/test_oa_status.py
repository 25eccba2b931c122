"""Where each OA stands: `tipline zalo oa-status`, `tipline zalo set-tokens`, and what feeds them
(the last webhook event, recorded by expansion; the last send error, recorded by the send job).

The defect these close: an OA attached the README's way (`units add`, `units set-oa`) has no
tokens, and every acknowledgement through it failed with "has no tokens" shown nowhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import MetaData, Table, create_engine, select, update

from tests.conftest import COMMUNE_OA, PROVINCE_OA, expand, run_jobs, run_tipline
from tests.databases import Databases, every_value
from tests.zalo_events import event, signed_headers
from tipline.cli import main
from tipline.config import Config, public_halves
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.relay import drain
from tipline.migrate import downgrade, upgrade
from tipline.models import AuditEvent, Delivery, InboundEvent, Message, OfficialAccount, utcnow
from tipline.runtime import Runtime
from tipline.units import add_unit, set_oa
from tipline.zalo.client import TokenPair, ZaloClient
from tipline.zalo.simulator import issue_tokens
from tipline.zalo.tokens import open_tokens, refresh_due_tokens, store_tokens

NEW_OA = "3886132808788132137"
STATUS_KEYS = {"oa_id", "unit", "token_state", "expires_at", "last_webhook_at", "last_error"}

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> Run:
    """`tipline …` in this process, with the test's environment (as tests/test_cli.py)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    umask = os.umask(0o022)
    os.umask(umask)

    def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
        try:
            result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
        finally:
            os.umask(umask)  # `tipline` sets 077 in the process that runs it
        return result.exit_code, result.output

    return invoke


def status(run: Run) -> dict[str, dict[str, Any]]:
    code, out = run("zalo", "oa-status", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert isinstance(rows, list)
    assert all(set(row) == STATUS_KEYS for row in rows)
    return {row["oa_id"]: row for row in rows}


def oa_row(runtime: Runtime, oa_id: str) -> OfficialAccount:
    with runtime.sessions() as session:
        return session.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
        ).one()


def store(runtime: Runtime, oa_id: str, pair: TokenPair) -> None:
    with runtime.sessions() as session, session.begin():
        oa = session.scalars(select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)).one()
        store_tokens(session, oa, pair, runtime.config.secrets.relay_public)


def tip_through(client: FlaskClient, runtime: Runtime, oa: str, msg_id: str) -> Message:
    """A new informant's tip through the webhook, expanded, dispatched; its acknowledgement
    sent by the worker."""
    user = str(10**18 + sum(map(ord, msg_id)) * 7919)
    raw = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id=msg_id, oa=oa, user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        tip_id = session.scalars(
            select(InboundEvent.tip_public_id).order_by(InboundEvent.id.desc()).limit(1)
        ).one()
    assert tip_id is not None and dispatch_tip(tip_id) == "dispatched"
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])
    with runtime.sessions() as session:
        return session.scalars(
            select(Message).where(Message.direction == "out").order_by(Message.id.desc()).limit(1)
        ).one()


# --- the defect: an OA without tokens fails every acknowledgement, and said so nowhere ------


def test_an_oa_attached_the_readme_way_shows_missing_tokens_and_the_failed_send(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str, run: Run
) -> None:
    with runtime.sessions() as session, session.begin():
        add_unit(
            session, code="v2025:32137", name="Công an xã Hưng Mỹ", level="commune",
            parent_code="v2025:96",
        )
        set_oa(session, "v2025:32137", NEW_OA)
    assert status(run)[NEW_OA]["token_state"] == "missing"
    ack = tip_through(client, runtime, NEW_OA, "readme-1")
    assert ack.delivery == Delivery.FAILED and "has no tokens" in (ack.delivery_error or "")
    row = status(run)[NEW_OA]
    assert row["token_state"] == "missing" and row["unit"] == "v2025:32137"
    assert row["last_error"] is not None and "has no tokens" in row["last_error"]
    assert row["expires_at"] is None and row["last_webhook_at"] is not None
    # The other OAs, connected and answered, carry no error.
    assert status(run)[COMMUNE_OA]["last_error"] is None


def test_a_successful_send_clears_the_oa_error_and_an_informants_error_sets_none(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    import httpx

    httpx.post(f"{sim}/_sim/faults", json={"errors": [-224]}).raise_for_status()
    first = tip_through(client, runtime, COMMUNE_OA, "health-1")
    assert first.delivery == Delivery.FAILED
    oa = oa_row(runtime, COMMUNE_OA)
    assert oa.last_error is not None and "-224" in oa.last_error and oa.last_error_at
    assert tip_through(client, runtime, PROVINCE_OA, "health-2").delivery == Delivery.SENT
    assert oa_row(runtime, COMMUNE_OA).last_error is not None  # another OA's success
    # The informant's window closed (-230): Zalo answered for the informant, the OA works.
    httpx.post(f"{sim}/_sim/faults", json={"errors": [-230]}).raise_for_status()
    closed = tip_through(client, runtime, COMMUNE_OA, "health-3")
    assert closed.delivery == Delivery.WINDOW_CLOSED
    oa = oa_row(runtime, COMMUNE_OA)
    assert oa.last_error is None and oa.last_error_at is None


# --- tipline zalo oa-status -------------------------------------------------------------------


def test_oa_status_json_is_the_contracts_shape_for_every_state(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], sim: str, run: Run
) -> None:
    with runtime.sessions() as session, session.begin():
        add_unit(session, code="v2025:32137", name="Công an xã Hưng Mỹ", level="commune")
        set_oa(session, "v2025:32137", NEW_OA)
        set_oa(session, "v2025:32128", "3886132808788132128")
    store(runtime, "3886132808788132128", TokenPair("a", "b", 600))  # 10 minutes left
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(OfficialAccount)
            .where(OfficialAccount.oa_id == PROVINCE_OA)
            .values(token_error="token refresh refused (zalo -14020): an OA admin must re-consent")
        )
    raw = event(text="Tin báo", msg_id="status-1", oa=COMMUNE_OA)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)

    rows = status(run)
    # By unit code: v2025:32128, v2025:32134, v2025:32137, v2025:96.
    assert list(rows) == ["3886132808788132128", COMMUNE_OA, NEW_OA, PROVINCE_OA]
    assert {oa: row["token_state"] for oa, row in rows.items()} == {
        COMMUNE_OA: "ok",
        PROVINCE_OA: "error",
        "3886132808788132128": "expiring",
        NEW_OA: "missing",
    }
    commune = rows[COMMUNE_OA]
    assert commune["unit"] == "v2025:32134"
    expires = oa_row(runtime, COMMUNE_OA).access_expires_at
    assert expires is not None and commune["expires_at"] == expires.isoformat(timespec="seconds")
    webhook = oa_row(runtime, COMMUNE_OA).last_webhook_at
    assert webhook is not None
    assert commune["last_webhook_at"] == webhook.isoformat(timespec="seconds")
    assert rows[PROVINCE_OA]["last_webhook_at"] is None
    assert rows[NEW_OA]["expires_at"] is None
    # The text form names every OA and its state.
    code, out = run("zalo", "oa-status")
    assert code == 0
    for oa, row in rows.items():
        assert oa in out and row["token_state"] in out


def test_a_grant_near_its_three_months_is_expiring(
    runtime: Runtime, units: dict[str, str], sim: str, run: Run
) -> None:
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(OfficialAccount)
            .where(OfficialAccount.oa_id == COMMUNE_OA)
            .values(tokens_updated_at=utcnow() - timedelta(days=80))
        )
    assert status(run)[COMMUNE_OA]["token_state"] == "expiring"
    assert status(run)[PROVINCE_OA]["token_state"] == "ok"


def test_last_webhook_at_comes_from_expansion_and_never_goes_back(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    raw = event(text="Tin báo", msg_id="webhook-1", oa=COMMUNE_OA)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    # The webhook itself writes nothing but its one event.
    assert oa_row(runtime, COMMUNE_OA).last_webhook_at is None
    expand(runtime)
    with runtime.sessions() as session:
        received = session.scalars(select(InboundEvent.received_at)).one()
    assert oa_row(runtime, COMMUNE_OA).last_webhook_at == received
    assert oa_row(runtime, PROVINCE_OA).last_webhook_at is None
    later = utcnow() + timedelta(days=1)
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(OfficialAccount)
            .where(OfficialAccount.oa_id == COMMUNE_OA)
            .values(last_webhook_at=later)
        )
    raw = event(text="Tin báo thêm", msg_id="webhook-2", oa=COMMUNE_OA)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    assert oa_row(runtime, COMMUNE_OA).last_webhook_at == later


# --- tipline zalo set-tokens ------------------------------------------------------------------


def test_set_tokens_stores_the_pair_sealed_and_audited_as_the_system(
    runtime: Runtime, units: dict[str, str], sim: str, run: Run, config: Config
) -> None:
    access, refresh, _ = issue_tokens(config.data_dir, COMMUNE_OA)
    with runtime.sessions() as session, session.begin():
        session.execute(
            update(OfficialAccount)
            .where(OfficialAccount.oa_id == COMMUNE_OA)
            .values(sealed_tokens=None, access_expires_at=None, last_error="old failure")
        )
    assert status(run)[COMMUNE_OA]["token_state"] == "missing"
    code, out = run("zalo", "set-tokens", COMMUNE_OA, input=f"{access}\n{refresh}\n")
    assert code == 0, out
    assert access not in out and refresh not in out
    oa = oa_row(runtime, COMMUNE_OA)
    pair = open_tokens(oa, runtime.config.secrets.relay_key)
    assert pair is not None and (pair.access_token, pair.refresh_token) == (access, refresh)
    assert oa.last_error is None and oa.token_error is None
    values = [str(value) for value in every_value(runtime.config.database_url)]
    assert not any(access in value or refresh in value for value in values)
    row = status(run)[COMMUNE_OA]
    assert row["token_state"] == "ok" and row["last_error"] is None
    with runtime.sessions() as session:
        [connected] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "oa_connect")
        ).all()
    assert connected.actor_id is None and connected.object_id == COMMUNE_OA
    assert connected.detail == {"via": "set_tokens"} and connected.unit_code == "v2025:32134"
    # The next scheduled refresh renews a pair given by hand (proving its refresh token).
    with ZaloClient.from_config(runtime.config) as zalo:
        assert refresh_due_tokens(runtime, zalo) == [COMMUNE_OA]
    renewed = open_tokens(oa_row(runtime, COMMUNE_OA), runtime.config.secrets.relay_key)
    assert renewed is not None and renewed.refresh_token != refresh


@pytest.mark.parametrize(
    ("oa_id", "text", "message"),
    [
        (COMMUNE_OA, "only-one-line\n", "two lines"),
        (COMMUNE_OA, "a\nb\nc\n", "two lines"),
        (COMMUNE_OA, "", "two lines"),
        (COMMUNE_OA, "same\nsame\n", "the same"),
        (COMMUNE_OA, "two words\nrefresh\n", "one word"),
        ("3886132808700000009", "access\nrefresh\n", "attached to no unit"),
    ],
)
def test_set_tokens_refuses_bad_input_and_stores_nothing(
    runtime: Runtime, units: dict[str, str], run: Run, oa_id: str, text: str, message: str
) -> None:
    before = {oa.oa_id: oa.sealed_tokens for oa in _all_oas(runtime)}
    code, out = run("zalo", "set-tokens", oa_id, input=text)
    assert code != 0 and message in out
    assert {oa.oa_id: oa.sealed_tokens for oa in _all_oas(runtime)} == before
    with runtime.sessions() as session:
        connects = select(AuditEvent).where(AuditEvent.action == "oa_connect")
        assert session.scalars(connects).all() == []


def _all_oas(runtime: Runtime) -> list[OfficialAccount]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OfficialAccount)))


def test_set_tokens_needs_only_the_relay_keys_public_half(
    env: dict[str, str], config: Config, runtime: Runtime, units: dict[str, str]
) -> None:
    """As on a web machine: the CLI seals with the public half; only a worker opens the pair."""
    public_env = {**os.environ, **env, **public_halves(config.secrets)}
    public_env.pop("TIPLINE_RELAY_KEY", None)
    done = run_tipline(public_env, "zalo", "set-tokens", COMMUNE_OA, timeout=60)
    assert done.returncode != 0  # nothing on stdin
    done = _run_with_input(public_env, ["zalo", "set-tokens", COMMUNE_OA], "acc-1\nref-1\n")
    assert done.returncode == 0, done.stderr
    pair = open_tokens(oa_row(runtime, COMMUNE_OA), runtime.config.secrets.relay_key)
    assert pair is not None and pair.access_token == "acc-1"


def _run_with_input(env: dict[str, str], args: list[str], text: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tipline.cli", *args],
        env=env, input=text, capture_output=True, text=True, timeout=60, check=False,
    )


# --- the migration ----------------------------------------------------------------------------


def test_migration_0018_dates_existing_pairs_from_their_access_token(
    databases: Databases,
) -> None:
    url = databases.create()
    upgrade(url, "0017_inbound_purge")
    engine = create_engine(url)
    schema = MetaData()
    units_table = Table("units", schema, autoload_with=engine)
    oas = Table("official_accounts", schema, autoload_with=engine)
    expires = utcnow().replace(microsecond=0) + timedelta(hours=10)
    with engine.begin() as conn:
        unit_id = conn.execute(
            units_table.insert().values(
                public_id="u1", code="test:1", name="Đơn vị", level="commune",
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]
        for n, tokens in enumerate((b"sealed", None)):
            conn.execute(
                oas.insert().values(
                    oa_id=f"10{n}", unit_id=unit_id, sealed_tokens=tokens,
                    access_expires_at=expires if tokens else None, token_generation=1,
                    created_at=utcnow(),
                )
            )
    upgrade(url)
    with engine.connect() as conn:
        found = dict(
            conn.execute(
                select(OfficialAccount.oa_id, OfficialAccount.tokens_updated_at)
            ).all()
        )
    assert found == {"100": expires - timedelta(seconds=90_000), "101": None}
    downgrade(url, "0017_inbound_purge")
    engine.dispose()
    databases.drop(url)
