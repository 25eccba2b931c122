"""The auditor's workspace through its forms, and the whole officer flow's exact audit events.

The auditor filters, pages, reads an officer's activity and the anomaly flags, exports CSV
(itself audited, no tip content in it) and verifies the chain, which reports a row edited by
SQL. Officers and commanders get 403 on /audit; the auditor gets 403 on tip pages.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.audit_expect import ANY, Expected, audit_mark, expect_events
from tests.conftest import expand
from tests.databases import raw
from tests.triage_helpers import csrf_from, login, post_form
from tests.zalo_events import USER, event, signed_headers
from tipline.audit import actions, record
from tipline.db import write_session
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import AuditEvent, Officer, Outcome, Tip, Unit
from tipline.runtime import Runtime
from tipline.time_rules import VIETNAM

TEXT = "Có người tàng trữ ma túy ở nhà số 5 hẻm 12, gọi 0912345678"
AUDITOR = "thanhtra"


def officer_id(runtime: Runtime, username: str) -> str:
    with runtime.sessions() as session:
        return str(
            session.scalars(select(Officer.public_id).where(Officer.username == username)).one()
        )


def unit_id(runtime: Runtime, code: str) -> str:
    with runtime.sessions() as session:
        return str(session.scalars(select(Unit.public_id).where(Unit.code == code)).one())


def send_tip(client: FlaskClient, runtime: Runtime, text: str = TEXT, msg_id: str = "au-1") -> str:
    raw = event(text=text, msg_id=msg_id)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id).order_by(Tip.id.desc()).limit(1)).one()
    return str(public_id)


@pytest.fixture
def tip_id(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> str:
    public_id = send_tip(client, runtime)
    assert dispatch_tip(public_id) == "dispatched"
    return public_id


@pytest.fixture
def auditor(client: FlaskClient, units: dict[str, str]) -> FlaskClient:
    response = login(client, AUDITOR, units[f"totp:{AUDITOR}"])
    assert response.status_code == 302 and response.location.endswith("/audit/")
    return client


def other_client(client: FlaskClient) -> FlaskClient:
    return client.application.test_client()


def export(client: FlaskClient, **filters: str) -> tuple[int, str, dict[str, str]]:
    page = client.get("/audit/")
    response = client.post(
        "/audit/export", data={"csrf_token": csrf_from(page.get_data(as_text=True)), **filters}
    )
    return response.status_code, response.get_data().decode("utf-8-sig"), dict(response.headers)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- who gets in ---------------------------------------------------------------------------


def test_only_auditors_get_in_and_auditors_get_no_tip(
    client: FlaskClient, units: dict[str, str], tip_id: str
) -> None:
    assert client.get("/audit/").location.endswith("/login")  # no login: to the login page
    for username in ("canbo", "chihuy"):
        staff = other_client(client)
        login(staff, username, units[f"totp:{username}"])
        for url in ("/audit/", "/audit/anomalies", "/audit/verify", "/audit/officers/x"):
            assert staff.get(url).status_code == 403, (username, url)
        assert post_form(staff, "/triage/", "/audit/verify", {}).status_code == 403
        assert post_form(staff, "/triage/", "/audit/export", {}).status_code == 403
    auditor = other_client(client)
    login(auditor, AUDITOR, units[f"totp:{AUDITOR}"])
    assert auditor.get(f"/triage/tips/{tip_id}").status_code == 403
    # Nothing on the auditor's pages leads to a tip, and no tip content is on them.
    for url in ("/audit/", f"/audit/?tip={tip_id}", "/audit/anomalies", "/audit/verify"):
        html = auditor.get(url).get_data(as_text=True)
        assert "/triage/tips/" not in html and "ma túy" not in html
    assert tip_id in auditor.get(f"/audit/?tip={tip_id}").get_data(as_text=True)
    # The nav offers the audit pages, not the inbox; no inline script or style anywhere.
    html = auditor.get("/audit/").get_data(as_text=True)
    assert 'id="nav-audit"' in html and 'href="/triage/"' not in html
    assert "<script" not in html and "style=" not in html and "<style" not in html


def test_export_and_verify_need_csrf(auditor: FlaskClient) -> None:
    assert auditor.post("/audit/export", data={}).status_code == 400
    assert auditor.post("/audit/verify", data={}).status_code == 400


# --- filters and pagination ----------------------------------------------------------------


def test_filters_by_officer_unit_action_tip_and_dates(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    canbo = other_client(client)
    login(canbo, "canbo", units["totp:canbo"])
    assert canbo.get(f"/triage/tips/{tip_id}").status_code == 200
    login(other_client(client), "canbo2", units["totp:canbo2"], password="wrong password!")
    login(client, AUDITOR, units[f"totp:{AUDITOR}"])

    def listed(**args: str) -> str:
        response = client.get("/audit/", query_string=args)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def actions_in(html: str) -> list[str]:
        return [part.split('"')[0].split()[0] for part in html.split('class="event a-')[1:]]

    html = listed(officer="canbo")  # a username or a public id
    assert set(actions_in(html)) == {"login", "key_unlock", "tip_open"}
    assert actions_in(listed(officer=officer_id(runtime, "canbo"))) == actions_in(html)
    assert actions_in(listed(action="tip_open")) == ["tip_open"]
    assert actions_in(listed(tip=tip_id)) == ["tip_open", "tip_dispatched", "tip_received"]
    assert actions_in(listed(action="login_failed", outcome="denied")) == ["login_failed"]
    commune = set(actions_in(listed(unit="v2025:32134")))
    assert {"tip_open", "tip_dispatched", "login", "key_unlock"} <= commune
    assert "tip_received" not in commune  # the intake's event names no unit
    # The province alone, then the province and every commune below it.
    province = actions_in(listed(unit="v2025:96"))
    tree = actions_in(listed(unit="v2025:96", below="y"))
    assert "tip_open" not in province and "tip_open" in tree and len(tree) > len(province)
    today = datetime.now(VIETNAM).date()
    assert "tip_open" in actions_in(listed(since=(today - timedelta(days=1)).isoformat()))
    assert actions_in(listed(until=(today - timedelta(days=2)).isoformat())) == []
    assert actions_in(listed(officer="nobody")) == []
    # Bad input is refused, not passed on.
    bad = listed(tip="<script>", action="not-an-action")
    assert "<script>" not in bad and actions_in(bad) == []
    # Every view was recorded, with what was asked.
    with runtime.sessions() as session:
        views = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == actions.AUDIT_VIEW)
                .order_by(AuditEvent.seq)
            )
        )
    assert len(views) == 12 and all(v.actor_name == AUDITOR for v in views)
    assert views[0].detail == {"view": "events", "page": "1", "officer": "canbo"}
    assert views[3].detail == {"view": "events", "page": "1", "object": tip_id}
    assert views[7].detail["below"] == "1" and views[7].detail["unit"] == "v2025:96"


def test_pagination_runs_in_sql_newest_first(
    auditor: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    with write_session(runtime.sessions) as session:
        canbo = session.scalars(select(Officer).where(Officer.username == "canbo")).one()
        for i in range(120):
            record(session, action=actions.TIP_OPEN, actor=canbo, object_id=f"tip{i:03d}")
    first = auditor.get("/audit/?action=tip_open").get_data(as_text=True)
    assert "120 " in first and "1 / 3" in first
    assert "tip119" in first and "tip070" in first and "tip069" not in first
    assert 'href="/audit/?action=tip_open&amp;page=2"' in first
    last = auditor.get("/audit/?action=tip_open&page=3").get_data(as_text=True)
    assert "tip019" in last and "tip000" in last and "tip020" not in last
    assert "3 / 3" in last and 'id="next-page"' not in last
    beyond = auditor.get("/audit/?action=tip_open&page=9").get_data(as_text=True)
    assert "tip0" not in beyond


# --- officer view, anomalies ---------------------------------------------------------------


def test_officer_activity_view_and_anomaly_flags(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    canbo = officer_id(runtime, "canbo")
    canbo2 = officer_id(runtime, "canbo2")
    # A burst of opens, two of them at 02:00 Vietnam time, and a tip assigned to canbo2.
    with write_session(runtime.sessions) as session:
        me = session.scalars(select(Officer).where(Officer.public_id == canbo)).one()
        record(
            session,
            action=actions.ASSIGN,
            actor=me,
            object_id=tip_id,
            detail={"assignee": canbo2},
        )
        opens = [
            record(session, action=actions.TIP_OPEN, actor=me, object_id=tip_id) for _ in range(21)
        ]
        session.flush()
        night = datetime.now(UTC).replace(hour=19, minute=0, second=0, microsecond=0)
        if night > datetime.now(UTC):
            night -= timedelta(days=1)
    move_in_time(runtime, [e.seq for e in opens], night)
    # Repeated failed logins against one account.
    for _ in range(5):
        login(other_client(client), "canbo2", units["totp:canbo2"], password="not it at all")
    login(client, AUDITOR, units[f"totp:{AUDITOR}"])

    panel = client.get("/audit/anomalies").get_data(as_text=True)
    for kind in ("open_burst", "off_hours_open", "not_assigned_open", "failed_logins"):
        assert f"k-{kind}" in panel, kind
    assert "/triage/tips/" not in panel
    # A narrower window: only what happened in it.
    old = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    quiet = client.get(f"/audit/anomalies?since={old}&until={old}").get_data(as_text=True)
    assert "k-open_burst" not in quiet and "k-failed_logins" not in quiet
    # One officer's flags only.
    only2 = client.get("/audit/anomalies?officer=canbo2").get_data(as_text=True)
    assert "k-failed_logins" in only2 and "k-open_burst" not in only2

    page = client.get(f"/audit/officers/{canbo}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Canbo" in html and "k-open_burst" in html and 'id="action-counts"' in html
    assert html.count('class="event a-tip_open') == 21 + 0  # the fixture opened nothing
    assert 'id="account-events"' in html  # its ACCOUNT_CREATE and grants
    assigns = client.get(f"/audit/officers/{canbo}?action=assign").get_data(as_text=True)
    assert "a-assign" in assigns and "a-tip_open" not in assigns
    assert client.get("/audit/officers/doesnotexist").status_code == 404
    assert client.get("/audit/officers/<bad>").status_code == 404
    with runtime.sessions() as session:
        viewed = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == actions.AUDIT_VIEW, AuditEvent.object_id == canbo
            )
        ).all()
    assert len(viewed) == 2


def move_in_time(runtime: Runtime, seqs: list[int], start: datetime) -> None:
    """Move events to another time for an anomaly fixture, re-sealing the chain after it.

    Events are always stamped now; the night-time opens a flag needs are made by moving them,
    then every link and the head are recomputed so that the chain still verifies.
    """
    from keys import chain_hash
    from tipline.audit.chain import CHAINED, canonical, format_time
    from tipline.models.audit_head import GENESIS_HASH

    with raw(runtime.config.database_url) as db:
        for i, seq in enumerate(seqs):
            db.execute(
                "UPDATE audit_events SET at = ? WHERE seq = ?",
                (format_time(start + timedelta(seconds=10 * i)), seq),
            )
        previous = GENESIS_HASH
        for row in db.execute(
            f"SELECT seq, {', '.join(CHAINED)} FROM audit_events ORDER BY seq"  # noqa: S608
        ):
            previous = chain_hash(previous, canonical(row[0], list(row[1:])))
            db.execute("UPDATE audit_events SET hash = ? WHERE seq = ?", (previous, row[0]))
        db.execute("UPDATE audit_head SET hash = ?", (previous,))


# --- export and verify ---------------------------------------------------------------------


def test_csv_export_is_audited_and_holds_no_tip_content(
    client: FlaskClient, runtime: Runtime, units: dict[str, str], tip_id: str
) -> None:
    canbo = other_client(client)
    login(canbo, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tip_id}"
    note = {"text": "Ghi chú mật: nhà số 5"}
    assert post_form(canbo, url, f"{url}/note", note).status_code == 302
    login(client, AUDITOR, units[f"totp:{AUDITOR}"])
    mark = audit_mark(runtime)
    status, text, headers = export(client)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"].startswith("attachment; filename=")
    assert headers["Cache-Control"] == "no-store"
    rows = csv_rows(text)
    assert {"tip_received", "tip_dispatched", "tip_open", "note_added"} <= {
        r["action"] for r in rows
    }
    assert all(len(r["hash"]) == 64 for r in rows)
    for secret in ("ma túy", "0912345678", "Ghi chú", "nhà số 5", USER):
        assert secret not in text
    # Filtered: the tip's events only, and the export itself is an event with the filters.
    status, text, _ = export(client, tip=tip_id, action="tip_open")
    assert status == 200 and [r["action"] for r in csv_rows(text)] == ["tip_open"]
    assert export(client, tip="<bad>")[0] == 400
    expect_events(
        runtime,
        [
            Expected(actions.AUDIT_VIEW, actor=AUDITOR, detail={"view": "events"}),
            Expected(
                actions.AUDIT_EXPORT,
                actor=AUDITOR,
                client_address="127.0.0.1",
                detail={"rows": str(len(rows))},
            ),
            Expected(actions.AUDIT_VIEW, actor=AUDITOR),
            Expected(
                actions.AUDIT_EXPORT,
                actor=AUDITOR,
                detail={"rows": "1", "object": tip_id, "action": "tip_open"},
            ),
            Expected(actions.AUDIT_VIEW, actor=AUDITOR),  # the refused export wrote nothing
        ],
        after=mark,
    )


def test_verify_button_reports_intact_then_a_row_edited_by_sql(
    auditor: FlaskClient, runtime: Runtime, tip_id: str
) -> None:
    page = auditor.get("/audit/verify").get_data(as_text=True)
    ok = auditor.post("/audit/verify", data={"csrf_token": csrf_from(page)})
    html = ok.get_data(as_text=True)
    assert ok.status_code == 200 and 'class="card verdict ok"' in html
    with runtime.sessions() as session:
        victim = session.scalars(
            select(AuditEvent).where(AuditEvent.action == actions.TIP_DISPATCHED)
        ).one()
        seq, victim_id = victim.seq, victim.public_id
    # An attacker with the database: around the append-only trigger, then edit the row.
    with raw(runtime.config.database_url) as db:
        db.execute("UPDATE audit_events SET unit_code = 'v2025:32128' WHERE seq = ?", (seq,))
    broken = auditor.post("/audit/verify", data={"csrf_token": csrf_from(page)})
    html = broken.get_data(as_text=True)
    assert broken.status_code == 200 and 'class="card verdict broken"' in html
    assert f"#{seq}" in html and victim_id in html and 'id="bad-event"' in html
    assert "v2025:32128" in html  # the event as it is stored now
    with runtime.sessions() as session:
        verifies = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == actions.AUDIT_VERIFY)
                .order_by(AuditEvent.seq)
            )
        )
    assert [v.outcome for v in verifies] == ["ok", "broken"]
    assert verifies[1].detail["first_bad_seq"] == str(seq)
    assert verifies[1].actor_name == AUDITOR and verifies[1].client_address == "127.0.0.1"
    # The history of verifications is on the page, and the list still renders.
    assert 'id="verifications"' in html and html.count("a-audit_verify") >= 1
    assert auditor.get("/audit/").status_code == 200


# --- the whole flow, exactly these events --------------------------------------------------


def test_whole_flow_writes_exactly_the_expected_events(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    """Intake → dispatch → login → open → reply → transfer → close, and the auditor's look."""
    mark = audit_mark(runtime)
    tip = send_tip(client, runtime, msg_id="flow-1")
    assert dispatch_tip(tip) == "dispatched"
    url = f"/triage/tips/{tip}"

    canbo = other_client(client)
    assert login(canbo, "canbo", units["totp:canbo"]).status_code == 302
    # post_form loads the tip page first, as the officer's browser does: one visit, one open.
    reply = {"text": "Bạn có thể cho biết thời gian không?"}
    assert post_form(canbo, url, f"{url}/reply", reply).status_code == 302
    target = unit_id(runtime, "v2025:32128")
    moved = post_form(canbo, url, f"{url}/transfer", {"value": target, "confirm": "1"})
    # To the page that says where it went (tipline issue 18), not to a 403 on the tip.
    assert moved.status_code == 302 and moved.location.endswith(f"{url}/moved")
    assert canbo.get(url).status_code == 403  # the tip has left this unit: a denied open

    canbo2 = other_client(client)
    assert login(canbo2, "canbo2", units["totp:canbo2"]).status_code == 302
    assert post_form(canbo2, url, f"{url}/status", {"value": "resolved"}).status_code == 302

    auditor = other_client(client)
    assert login(auditor, AUDITOR, units[f"totp:{AUDITOR}"]).status_code == 302
    assert auditor.get(url).status_code == 403  # refused before anything opens; audited
    status, text, _ = export(auditor, tip=tip)
    assert status == 200
    for secret in ("ma túy", "0912345678", "thời gian", USER):
        assert secret not in text

    def staff(name: str, unit: str | None, **more: Any) -> Expected:
        return Expected(actor=name, unit=unit, client_address="127.0.0.1", **more)

    commune, other = "v2025:32134", "v2025:32128"
    events = expect_events(
        runtime,
        [
            Expected(actions.TIP_RECEIVED, tip, actor=None, unit=None, client_address=None),
            Expected(
                actions.TIP_DISPATCHED,
                tip,
                actor=None,
                unit=commune,
                client_address=None,
                detail={"unit": commune},
            ),
            staff("canbo", commune, action=actions.LOGIN),
            staff("canbo", commune, action=actions.KEY_UNLOCK),
            staff("canbo", commune, action=actions.TIP_OPEN, object_id=tip),
            staff(
                "canbo",
                commune,
                action=actions.REPLY_QUEUED,
                object_id=tip,
                detail={"message": ANY},
            ),
            # The page loaded again before the transfer is the same visit: no second open.
            staff(
                "canbo",
                commune,
                action=actions.TRANSFER,
                object_id=tip,
                detail={"from_unit": commune, "to_unit": other},
            ),
            staff(
                "canbo",
                commune,
                action=actions.TIP_OPEN,
                object_id=tip,
                outcome=Outcome.DENIED,
                detail={"endpoint": "tips.show"},
            ),
            staff("canbo2", other, action=actions.LOGIN),
            staff("canbo2", other, action=actions.KEY_UNLOCK),
            staff("canbo2", other, action=actions.TIP_OPEN, object_id=tip),
            staff(
                "canbo2",
                other,
                action=actions.STATUS_CHANGE,
                object_id=tip,
                detail={"from": "new", "to": "resolved"},
            ),
            staff(AUDITOR, "v2025:96", action=actions.LOGIN),
            staff(
                AUDITOR,
                "v2025:96",
                action=actions.TIP_OPEN,
                object_id=tip,
                outcome=Outcome.DENIED,
                detail={"endpoint": "tips.show"},
            ),
            staff(AUDITOR, "v2025:96", action=actions.AUDIT_VIEW, detail={"view": "events"}),
            staff(
                AUDITOR,
                "v2025:96",
                action=actions.AUDIT_EXPORT,
                detail={"object": tip, "rows": "9"},
            ),
        ],
        after=mark,
    )
    assert events[5].detail["message"] != tip
    with runtime.sessions() as session:
        closed = session.scalars(select(Tip).where(Tip.public_id == tip)).one()
        assert closed.status == "resolved" and closed.closed_at is not None
        assert closed.unit is not None and closed.unit.code == other
    session_check_no_content(runtime)


def session_check_no_content(runtime: Runtime) -> None:
    """No column of any event holds the tip's words, the reply, or the informant's id."""
    with runtime.sessions() as session:
        every = " ".join(
            " ".join(str(getattr(e, c.name)) for c in AuditEvent.__table__.columns)
            for e in session.scalars(select(AuditEvent))
        )
    for secret in ("ma túy", "0912345678", "thời gian", USER):
        assert secret not in every
