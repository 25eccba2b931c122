"""The commanders' dashboard: SQL aggregates of plaintext metadata drawn as SVG; commanders only."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from tests.triage_helpers import login
from tipline.models import Tip, Unit, utcnow
from tipline.runtime import Runtime
from triage.dashboard import figures, nice_max


def seed(runtime: Runtime) -> dict[str, int]:
    """Tips with known metadata (no content: the dashboard never decrypts)."""
    now = utcnow()
    with runtime.sessions() as session, session.begin():
        unit = {u.code: u.id for u in session.scalars(select(Unit))}
        rows = [
            # unit, category, priority, status, age, opened after
            ("v2025:32134", "ma_tuy", "urgent", "new", timedelta(hours=1), timedelta(minutes=5)),
            ("v2025:32134", "ma_tuy", "urgent", "new", timedelta(hours=2), timedelta(hours=1)),
            ("v2025:32134", "ma_tuy", "urgent", "new", timedelta(hours=3), None),
            ("v2025:32134", "trom_cap", "normal", "verifying", timedelta(days=2), None),
            ("v2025:32128", "trom_cap", "normal", "in_progress", timedelta(days=5), timedelta(1)),
            ("v2025:32128", "lua_dao", "low", "resolved", timedelta(days=10), timedelta(hours=3)),
            ("v2025:96", "danh_bac", "high", "new", timedelta(days=40), None),  # before the period
            ("v2025:32134", "hoi_thu_tuc", "normal", "new", timedelta(hours=5), None),
        ]
        for i, (code, category, priority, status, age, opened) in enumerate(rows):
            created = now - age
            session.add(
                Tip(
                    receipt_code=f"DASH{i:04d}",
                    status=status,
                    priority=priority,
                    category=category,
                    unit_id=unit[code],
                    informant_alias=f"alias{i}",
                    public_key=b"\0" * 32,
                    created_at=created,
                    last_inbound_at=created,
                    dispatched_at=created,
                    first_opened_at=created + opened if opened is not None else None,
                )
            )
    return unit


def test_figures_from_sql_aggregates(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    unit = seed(runtime)
    with runtime.sessions() as session:
        data = figures(session, list(unit.values()), utcnow())
    assert data.period_total == 7  # the 40-day-old tip is outside the 30 days
    assert data.per_unit == {unit["v2025:32134"]: 5, unit["v2025:32128"]: 2}
    assert sum(c.get("ma_tuy", 0) for c in data.per_day.values()) == 3
    assert data.sla["urgent"] == {"met": 1, "late": 1, "overdue": 1, "pending": 0}
    assert data.sla["normal"] == {"met": 1, "late": 0, "overdue": 1, "pending": 1}
    assert data.sla["low"] == {"met": 1, "late": 0, "overdue": 0, "pending": 0}
    # Open tips by age, procedure questions left out as in the inbox.
    assert data.backlog["new"] == [3, 0, 0, 0, 1]
    assert data.backlog["verifying"] == [0, 1, 0, 0, 0]
    assert data.backlog["in_progress"] == [0, 0, 1, 0, 0]
    assert data.overdue_now == 3  # urgent unopened, normal 2 days unopened, high 40 days
    assert [nice_max(v) for v in (0, 1, 3, 7, 11, 180)] == [1, 1, 5, 10, 20, 200]


def test_dashboard_renders_svg_for_the_commander(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    seed(runtime)
    login(client, "chihuy", units["totp:chihuy"])
    response = client.get("/triage/dashboard/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.count("<svg") >= 4 and "<script" not in page and "style=" not in page
    assert re.search(r'id="period-total"[^>]*>7<', page)
    assert re.search(r'id="backlog-total"[^>]*>6<', page)
    assert re.search(r'id="overdue-now" class="breach"[^>]*>3<', page)
    assert re.search(r'id="compliance">50 %<', page)  # 3 in time of 6 due
    titles = re.findall(r"<title>([^<]*)</title>", page)
    assert "Công an xã Lương Thế Trân: 5" in titles and "Công an xã Cái Nước: 2" in titles
    assert sum(t.endswith(": 3") and "·" in t for t in titles) >= 1  # new tips under a day old
    assert sum(int(t.rsplit(": ", 1)[1]) for t in titles if "Ma túy" in t) == 3  # per day
    # Content never appears: the dashboard has nothing to decrypt.
    assert client.get("/triage/").status_code == 200


def test_dashboard_is_for_commanders_only(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    for username in ("canbo", "thanhtra"):
        other = client.application.test_client()
        login(other, username, units[f"totp:{username}"])
        assert other.get("/triage/dashboard/").status_code == 403
        assert "/triage/dashboard/" not in other.get("/triage/").get_data(as_text=True)
    assert client.get("/triage/dashboard/").status_code == 302  # not logged in


def test_an_officer_commander_sees_only_their_subtree(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    unit = seed(runtime)
    from tipline.officers import add_officer

    with runtime.sessions() as session, session.begin():
        new = add_officer(
            session,
            username="chihuyxa",
            display_name="Chỉ huy xã",
            role="commander",
            unit_code="v2025:32128",
            password="correct horse battery",
            cost=runtime.config.kdf_cost,
            totp_confirmed=True,
        )
    login(client, "chihuyxa", new.totp_secret)
    page = client.get("/triage/dashboard/").get_data(as_text=True)
    assert re.search(r'id="period-total"[^>]*>2<', page)
    assert "Lương Thế Trân" not in page and unit
