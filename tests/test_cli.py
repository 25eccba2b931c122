"""The `tipline` commands of the core slice, run as an operator would (CONTRACT.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tipline.cli import main
from tipline.models import Officer, Unit
from tipline.runtime import Runtime


@pytest.fixture
def run(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime):  # type: ignore[no-untyped-def]
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
        return result.exit_code, result.output

    # `tipline` sets umask 077 in the process that runs it: here, the test run's own.
    umask = os.umask(0o022)
    os.umask(umask)
    yield invoke
    os.umask(umask)


def test_units_officers_and_keys(run, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    assert run("units", "add", "v2025:96", "Công an tỉnh Cà Mau", "--level", "province")[0] == 0
    code, out = run(
        "officers",
        "add",
        "chihuy.camau",
        "--role",
        "commander",
        "--unit",
        "v2025:96",
        "--password",
        "mat-khau-rat-dai-1",
    )
    assert code == 0, out
    assert "recovery code" in out and "TOTP secret" in out
    secret = out.split("TOTP secret (enrol in an authenticator app): ")[1].split()[0]
    assert len(pyotp.TOTP(secret).now()) == 6
    assert (
        run(
            "units",
            "add",
            "v2025:32134",
            "Công an xã Lương Thế Trân",
            "--level",
            "commune",
            "--parent",
            "v2025:96",
        )[0]
        == 0
    )
    assert run("units", "set-oa", "v2025:32134", "3886132808788132134")[0] == 0
    code, out = run("units", "list", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "code": "v2025:32134",
            "name": "Công an xã Lương Thế Trân",
            "level": "commune",
            "parent": "v2025:96",
            "oa_ids": ["3886132808788132134"],
        },
        {
            "code": "v2025:96",
            "name": "Công an tỉnh Cà Mau",
            "level": "province",
            "parent": None,
            "oa_ids": [],
        },
    ]
    code, out = run("keys", "rotate", "--unit", "v2025:32134")
    assert code == 0 and "key version 2" in out
    code, out = run(
        "keys",
        "rotate",
        "--unit",
        "v2025:32134",
        "--reseal-as",
        "chihuy.camau",
        "--password",
        "mat-khau-rat-dai-1",
    )
    assert code == 0 and "key version 3" in out
    with runtime.sessions() as session:
        unit = session.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        assert [k.retired_at is None for k in unit.keys] == [False, False, True]
        officer = session.scalars(select(Officer)).one()
        assert officer.role == "commander" and officer.unit_id is not None


@pytest.mark.parametrize(
    "args",
    [
        ("units", "add", "v2025:1", "X", "--level", "planet"),
        ("units", "add", "v2025:1", "X", "--level", "commune", "--parent", "v2025:404"),
        ("units", "set-oa", "v2025:404", "123"),
        ("units", "set-oa", "v2025:96", "not-digits"),
        (
            "officers",
            "add",
            "Bad Name",
            "--role",
            "officer",
            "--unit",
            "v2025:96",
            "--password",
            "mat-khau-rat-dai-1",
        ),
        (
            "officers",
            "add",
            "ngan",
            "--role",
            "officer",
            "--unit",
            "v2025:96",
            "--password",
            "short",
        ),
        ("officers", "add", "khongdonvi", "--role", "officer", "--password", "mat-khau-rat-dai-1"),
        ("keys", "rotate", "--unit", "v2025:404"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    run, runtime: Runtime, args: tuple[str, ...]
) -> None:  # type: ignore[no-untyped-def]
    run("units", "add", "v2025:96", "Công an tỉnh Cà Mau", "--level", "province")
    with runtime.sessions() as session:
        before = (
            len(session.scalars(select(Unit)).all()),
            len(session.scalars(select(Officer)).all()),
        )
    code, out = run(*args)
    assert code != 0 and ("Error" in out or "Usage" in out)
    with runtime.sessions() as session:
        after = (
            len(session.scalars(select(Unit)).all()),
            len(session.scalars(select(Officer)).all()),
        )
    assert after == before


def test_duplicate_unit_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    assert run("units", "add", "v2025:96", "A", "--level", "province")[0] == 0
    code, out = run("units", "add", "v2025:96", "B", "--level", "province")
    assert code == 1 and "already exists" in out


def test_demo_seed_writes_the_logins_contract(runtime: Runtime, config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tipline.demo import COMMUNES, seed, write_logins

    logins = seed(runtime)
    assert logins is not None
    assert seed(runtime) is None  # seeding twice does nothing
    path = write_logins(config.data_dir, logins)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(path.read_text())
    roles = sorted({entry["role"] for entry in stored})
    assert roles == ["admin", "auditor", "commander", "officer"]
    for entry in stored:
        assert {"username", "password", "totp_secret", "role", "unit"} <= entry.keys()
        pyotp.TOTP(entry["totp_secret"]).now()
    assert sum(entry["role"] == "officer" for entry in stored) == len(COMMUNES)
    with runtime.sessions() as session:
        units = session.scalars(select(Unit)).all()
        assert all(unit.official_accounts for unit in units)
        assert all(account.sealed_tokens for unit in units for account in unit.official_accounts)


def test_set_oa_moves_an_oa_of_another_unit_only_when_told(run, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    """An OA belongs to one unit: attaching it elsewhere used to move it silently, taking the
    tips its informants send (and its tokens) to the other unit without a word."""
    from tipline.models import AuditEvent, OfficialAccount

    oa = "3886132808788132134"
    for code in ("v2025:32134", "v2025:32128"):
        assert run("units", "add", code, f"Xã {code}", "--level", "commune")[0] == 0
    assert run("units", "set-oa", "v2025:32134", oa)[0] == 0

    def owner() -> str:
        with runtime.sessions() as session:
            return session.scalars(
                select(Unit.code).join(OfficialAccount).where(OfficialAccount.oa_id == oa)
            ).one()

    code, out = run("units", "set-oa", "v2025:32128", oa)
    assert code != 0 and "v2025:32134" in out and "--move" in out
    assert owner() == "v2025:32134"
    code, out = run("units", "set-oa", "v2025:32128", oa, "--move")
    assert code == 0, out
    assert owner() == "v2025:32128"
    with runtime.sessions() as session:
        attached = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "oa_attach").order_by(AuditEvent.seq)
        ).all()
    assert [e.detail for e in attached] == [
        {"oa": oa},
        {"oa": oa, "from_unit": "v2025:32134"},
    ]
    # Attaching it again to the unit it is in is not a move.
    assert run("units", "set-oa", "v2025:32128", oa)[0] == 0


@pytest.mark.usefixtures("units")
def test_officers_add_waits_for_a_key_holder_or_takes_one_at_hand(  # type: ignore[no-untyped-def]
    run, runtime: Runtime
) -> None:
    """`tipline officers add` grants the unit key only with a key holder's password
    (`--granted-by`); otherwise the account waits for an approval in the staff UI."""
    from sqlalchemy import select

    from tests.conftest import OFFICER_PASSWORD
    from tipline.models import Holder, KeyGrant, Officer

    def holds(username: str) -> bool:
        with runtime.sessions() as session:
            officer = session.scalars(select(Officer).where(Officer.username == username)).one()
            return (
                session.scalars(
                    select(KeyGrant.id).where(
                        KeyGrant.holder_kind == Holder.OFFICER, KeyGrant.holder_id == officer.id
                    )
                ).first()
                is not None
            )

    base = ("officers", "add", "--role", "officer", "--unit", "v2025:32134", "--password")
    code, out = run(*base, "mat-khau-rat-dai-1", "cho.duyet")
    assert code == 0 and "unit key pending" in out and not holds("cho.duyet")
    code, out = run(
        *base, "mat-khau-rat-dai-2", "co.khoa", "--granted-by", "canbo",
        "--grantor-password", OFFICER_PASSWORD,
    )
    assert code == 0 and "pending" not in out and holds("co.khoa")
    with runtime.sessions() as session:
        from tipline.models import AuditEvent

        grant = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "grant").order_by(AuditEvent.seq.desc())
        ).first()
        assert grant is not None and grant.actor_name == "canbo"
