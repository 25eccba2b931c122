"""The audited flow so far: set-up commands, intake, dispatch, delivery — exactly these events.

Login, open, reply, transfer and close join this walk when the triage UI lands; they use the
same helper (tests/audit_expect.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.audit_expect import ANY, Expected, audit_mark, expect_events
from tests.conftest import COMMUNE_OA, expand, run_jobs
from tests.zalo_events import USER, event, signed_headers
from tipline.audit import actions
from tipline.cli import main
from tipline.jobs.relay import drain
from tipline.models import AuditEvent, Officer, Tip, Unit
from tipline.runtime import Runtime


@pytest.fixture
def run(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> Callable[..., tuple[int, str]]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def public_id(runtime: Runtime, model: type[Officer] | type[Unit], **where: str) -> str:
    with runtime.sessions() as session:
        column = next(iter(where))
        return str(
            session.scalars(
                select(model.public_id).where(getattr(model, column) == where[column])
            ).one()
        )


def test_cli_account_unit_and_key_actions_are_audited(
    run: Callable[..., tuple[int, str]], runtime: Runtime
) -> None:
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
    assert run("units", "set-oa", "v2025:32134", COMMUNE_OA)[0] == 0
    code, out = run("officers", "add", "thanhtra", "--role", "auditor", "--password", "x" * 14)
    assert code == 0, out
    assert run("keys", "rotate", "--unit", "v2025:32134")[0] == 0
    province = public_id(runtime, Unit, code="v2025:96")
    commune = public_id(runtime, Unit, code="v2025:32134")
    commander = public_id(runtime, Officer, username="chihuy.camau")
    auditor = public_id(runtime, Officer, username="thanhtra")
    system = {"actor": None, "client_address": None}
    expect_events(
        runtime,
        [
            Expected(
                actions.UNIT_CREATE,
                province,
                unit="v2025:96",
                detail={"level": "province"},
                **system,
            ),
            Expected(
                actions.ACCOUNT_CREATE,
                commander,
                unit="v2025:96",
                detail={"role": "commander", "username": "chihuy.camau"},
                **system,
            ),
            Expected(
                actions.GRANT_REQUEST,
                commander,
                unit="v2025:96",
                detail={"reason": "new_account"},
                **system,
            ),
            Expected(
                actions.KEY_CREATE, province, unit="v2025:96", detail={"version": "1"}, **system
            ),
            # The province's first key holder: nobody could approve; a fresh key version.
            Expected(
                actions.GRANT,
                commander,
                unit="v2025:96",
                detail={"versions": "1", "reason": "first_key_holder"},
                **system,
            ),
            Expected(
                actions.UNIT_CREATE,
                commune,
                unit="v2025:32134",
                detail={"parent": "v2025:96"},
                **system,
            ),
            Expected(
                actions.KEY_CREATE, commune, unit="v2025:32134", detail={"version": "1"}, **system
            ),
            Expected(
                actions.OA_ATTACH,
                COMMUNE_OA,
                unit="v2025:32134",
                detail={"oa": COMMUNE_OA},
                **system,
            ),
            Expected(
                actions.ACCOUNT_CREATE, auditor, unit=None, detail={"role": "auditor"}, **system
            ),
            Expected(
                actions.KEY_ROTATE,
                commune,
                unit="v2025:32134",
                detail={"version": "2", "resealed": "0"},
                **system,
            ),
        ],
    )


@pytest.mark.usefixtures("units")
def test_intake_dispatch_and_delivery_write_exactly_their_events(
    client: FlaskClient, runtime: Runtime, sim: str
) -> None:
    mark = audit_mark(runtime)
    raw = event(text="Có người buôn bán ma túy ở hẻm 12, số điện thoại 0912345678")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    # The same message again, and a follow-up: neither is a new tip, neither is an event.
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    more = event(text="Thêm: xe máy biển số 69B1-12345")
    assert client.post("/zalo/webhook", data=more, headers=signed_headers(more)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        tip = session.scalars(select(Tip)).one()
        tip_id, alias = tip.public_id, tip.informant_alias
    expect_events(
        runtime,
        [
            Expected(
                actions.TIP_RECEIVED,
                tip_id,
                actor=None,
                unit=None,
                client_address=None,
                detail={"oa": COMMUNE_OA},
            )
        ],
        after=mark,
    )

    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["dispatch"])
    drain(runtime.sessions, runtime.redis)
    run_jobs(runtime, ["outbound"])
    events = expect_events(
        runtime,
        [
            Expected(actions.TIP_RECEIVED, tip_id, actor=None),
            Expected(
                actions.TIP_DISPATCHED,
                tip_id,
                actor=None,
                unit="v2025:32134",
                detail={"unit": "v2025:32134"},
            ),
            Expected(
                actions.REPLY_DELIVERED,
                tip_id,
                actor=None,
                unit="v2025:32134",
                outcome="ok",
                detail={"delivery": "sent", "message": ANY},
            ),
        ],
        after=mark,
    )
    assert events[2].detail["message"] != tip_id

    # Never the informant, never the content: not in any column of any event.
    with runtime.sessions() as session:
        every = " ".join(
            " ".join(str(getattr(e, c.name)) for c in AuditEvent.__table__.columns)
            for e in session.scalars(select(AuditEvent))
        )
    for secret in (USER, alias, "ma túy", "0912345678", "69B1"):
        assert secret not in every
