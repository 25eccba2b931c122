"""A commander's dashboard a province can run on (issue 19): every figure links to the tips
behind it, a period, a map of the communes, idle units and silent OAs, workload, deadlines,
escalated tips, the duty roster managed in the UI, and the dashboard as the landing page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.test_dashboard import seed
from tests.triage_helpers import csrf_from, login
from tipline.audit import actions
from tipline.models import AuditEvent, Officer, OfficialAccount, Tip, Unit, utcnow
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units")


def commander(client: FlaskClient, units: dict[str, str]) -> FlaskClient:
    login(client, "chihuy", units["totp:chihuy"])
    return client


def public_id(runtime: Runtime, code: str) -> str:
    with runtime.sessions() as db:
        return db.scalars(select(Unit.public_id).where(Unit.code == code)).one()


def links(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]+)"', html)]


def inbox_codes(client: FlaskClient, url: str) -> set[str]:
    html = client.get(url).get_data(as_text=True)
    return set(re.findall(r"DASH\d{4}", html))


def test_the_commander_lands_on_the_dashboard(client: FlaskClient, units: dict[str, str]) -> None:
    response = login(client, "chihuy", units["totp:chihuy"])
    assert response.status_code == 302 and response.location.endswith("/triage/dashboard/")


def test_every_counter_links_to_the_tips_behind_it(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    seed(runtime)
    html = commander(client, units).get("/triage/dashboard/").get_data(as_text=True)
    overdue = re.search(r'<a id="overdue-now"[^>]*href="([^"]+)"', html)
    assert overdue, "the overdue counter is a link"
    # "Chưa mở, quá hạn: 3" — which ones? The link lists exactly those three.
    assert inbox_codes(client, unescape(overdue.group(1))) == {"DASH0002", "DASH0003", "DASH0006"}
    backlog = re.search(r'<a id="backlog-total"[^>]*href="([^"]+)"', html)
    assert backlog and len(inbox_codes(client, unescape(backlog.group(1)))) == 6
    # The unit chart's bars lead to each unit's tips.
    commune = public_id(runtime, "v2025:32128")
    assert any(f"unit={commune}" in href for href in links(html))


def test_the_period_can_be_chosen(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    seed(runtime)
    commander(client, units)
    week = client.get("/triage/dashboard/?days=7").get_data(as_text=True)
    assert re.search(r'id="period-total"[^>]*>6<', week)  # 10 and 40 days old are out
    quarter = client.get("/triage/dashboard/?days=90").get_data(as_text=True)
    assert re.search(r'id="period-total"[^>]*>8<', quarter)
    # Not a period on offer: the default, said so, nothing else changes.
    odd = client.get("/triage/dashboard/?days=12345")
    assert odd.status_code == 200 and re.search(
        r'id="period-total"[^>]*>7<', odd.get_data(as_text=True)
    )


def test_idle_units_and_silent_oas_are_shown(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    with runtime.sessions() as db, db.begin():
        oa = db.scalars(select(OfficialAccount)).first()
        assert oa is not None
        oa.last_webhook_at = utcnow() - timedelta(days=20)
    html = commander(client, units).get("/triage/dashboard/").get_data(as_text=True)
    idle = html[html.index('id="idle-units"') :]
    assert "Công an xã Cái Nước" in idle[: idle.index("</table>")]
    silent = html[html.index('id="silent-oas"') :]
    assert oa.oa_id in silent[: silent.index("</table>")]


def test_workload_deadlines_and_escalations(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    seed(runtime)
    with runtime.sessions() as db, db.begin():
        canbo = db.scalars(select(Officer).where(Officer.username == "canbo")).one()
        tips = {t.receipt_code: t for t in db.scalars(select(Tip))}
        tips["DASH0000"].assignee_id = canbo.id
        tips["DASH0003"].assignee_id = canbo.id
        tips["DASH0003"].escalated_at = utcnow()
        tips["DASH0003"].escalation_level = 1
    html = commander(client, units).get("/triage/dashboard/").get_data(as_text=True)
    workload = html[html.index('id="workload"') :]
    row = re.search(r"Canbo</a></td>\s*<td[^>]*>(\d+)</td>", workload)
    assert row and row.group(1) == "2"
    escalated = html[html.index('id="escalated"') :]
    assert "DASH0003" in escalated[: escalated.index("</table>")]
    # Open for more than 20 days (the Criminal Procedure Code's time to settle a report):
    # the 40-day-old tip is past the closure deadline.
    closure = re.search(r'<a id="closure-overdue"[^>]*href="([^"]+)"', html)
    assert closure and inbox_codes(client, unescape(closure.group(1))) == {"DASH0006"}


def test_the_map_shades_communes_and_leads_to_their_overdue_tips(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    seed(runtime)
    html = commander(client, units).get("/triage/dashboard/").get_data(as_text=True)
    assert '<svg class="map"' in html and 'id="province-map"' in html
    commune = public_id(runtime, "v2025:32134")
    target = next(h for h in links(html) if f"unit={commune}" in h and "overdue=1" in h)
    assert re.search(r'<path[^>]*class="area shade-\d"', html)
    assert inbox_codes(client, target) == {"DASH0002", "DASH0003"}


def test_the_roster_is_managed_in_the_ui_and_audited(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    commander(client, units)
    page = client.get("/triage/roster/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Canbo" in html and "Canbo2" in html
    with runtime.sessions() as db:
        canbo = db.scalars(select(Officer.public_id).where(Officer.username == "canbo")).one()
    done = client.post(
        f"/triage/roster/{canbo}", data={"csrf_token": csrf_from(html), "on_duty": "1"}
    )
    assert done.status_code == 302
    with runtime.sessions() as db:
        assert db.scalars(select(Officer.on_duty).where(Officer.public_id == canbo)).one()
        [event] = db.scalars(
            select(AuditEvent).where(AuditEvent.action == actions.DUTY_CHANGE)
        ).all()
        assert event.actor_name == "chihuy" and event.object_id == canbo
    # An officer sees only themselves, and cannot put a colleague on duty.
    officer = client.application.test_client()
    login(officer, "canbo2", units["totp:canbo2"])
    own = officer.get("/triage/roster/").get_data(as_text=True)
    assert "Canbo2" in own and ">Canbo<" not in own
    refused = officer.post(
        f"/triage/roster/{canbo}", data={"csrf_token": csrf_from(own), "on_duty": "0"}
    )
    assert refused.status_code == 403
