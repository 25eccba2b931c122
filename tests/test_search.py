"""Search: decrypt-and-match over the tips an officer can open, within a bound, audited blind."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, PROVINCE_OA, expand
from tests.triage_helpers import login, post_form
from tests.zalo_events import event, signed_headers
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import AuditEvent, Tip
from tipline.runtime import Runtime
from triage.search import fold, matcher, snippet

DRUGS = "Có người tàng trữ ma túy ở nhà số 5 hẻm 12, gọi 0912 345 678 <b>gấp</b>"
PLATE = "Xe máy biển số 69A-123.45 chở hàng lậu qua cầu Đầm Dơi"


def send(client: FlaskClient, runtime: Runtime, text: str, msg_id: str, oa: str, user: str) -> str:
    raw = event(text=text, msg_id=msg_id, oa=oa, user=user)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    with runtime.sessions() as session:
        public_id = session.scalars(select(Tip.public_id).order_by(Tip.id.desc())).first()
    assert public_id is not None and dispatch_tip(public_id) == "dispatched"
    return public_id


@pytest.fixture
def tips(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> dict[str, str]:
    """Two tips at Lương Thế Trân (the commune's OA) and one at the province."""
    return {
        "drugs": send(client, runtime, DRUGS, "s-1", COMMUNE_OA, "1001"),
        "plate": send(client, runtime, PLATE, "s-2", COMMUNE_OA, "1002"),
        "province": send(
            client,
            runtime,
            "Đánh bạc ở Cà Mau, số 0912345678 cũng biết",
            "s-3",
            PROVINCE_OA,
            "1003",
        ),
    }


def found(client: FlaskClient, query: str) -> set[str]:
    page = client.get("/triage/search/", query_string={"q": query})
    assert page.status_code == 200
    return set(re.findall(r'href="/triage/tips/([a-z0-9]+)"', page.get_data(as_text=True)))


def test_fold_keeps_positions_and_matches_numbers_across_separators() -> None:
    text = "Đường Lê Lợi, ĐT +84 912.345.678"
    assert fold(text) == "duong le loi, dt +84 912.345.678"
    assert len(fold(text)) == len(text)
    assert snippet(text, matcher("0912345678")) == ("Đường Lê Lợi, ĐT ", "+84 912.345.678", "")
    assert snippet(text, matcher("le loi"))[1] == "Lê Lợi"  # type: ignore[index]
    assert snippet("gọi 109123456789", matcher("0912345678")) is None  # not inside a longer one
    assert snippet("nhà số 5 hẻm 12", matcher("5 12")) is None
    assert snippet("biển 69a 12345", matcher("69A-123.45")) is not None


def test_search_finds_words_with_or_without_diacritics_and_phone_numbers(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str]
) -> None:
    login(client, "canbo", units["totp:canbo"])
    assert found(client, "ma túy") == {tips["drugs"]}
    assert found(client, "MA TUY") == {tips["drugs"]}
    assert found(client, "dam doi") == {tips["plate"]}
    assert found(client, "0912345678") == {tips["drugs"]}  # typed without the spaces
    assert found(client, "+84 912 345 678") == {tips["drugs"]}
    assert found(client, "69a12345") == {tips["plate"]}
    assert found(client, "không có gì") == set()
    page = client.get("/triage/search/", query_string={"q": "gap"}).get_data(as_text=True)
    assert "<mark>gấp</mark>" in page and "&lt;b&gt;" in page and "<b>gấp" not in page


def test_search_never_reaches_another_units_tips(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str]
) -> None:
    login(client, "canbo2", units["totp:canbo2"])
    assert found(client, "0912345678") == set()
    other = client.application.test_client()
    login(other, "canbo", units["totp:canbo"])
    assert tips["province"] not in found(other, "danh bac")
    commander = client.application.test_client()
    login(commander, "chihuy", units["totp:chihuy"])
    assert found(commander, "0912345678") == {tips["drugs"], tips["province"]}
    auditor = client.application.test_client()
    login(auditor, "thanhtra", units["totp:thanhtra"])
    assert auditor.get("/triage/search/", query_string={"q": "ma tuy"}).status_code == 403


def test_search_finds_notes_and_respects_the_bound(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str]
) -> None:
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tips['drugs']}"
    assert (
        post_form(client, url, f"{url}/note", {"text": "Đối tượng tên Tư Xoài"}).status_code == 302
    )
    assert found(client, "tu xoai") == {tips["drugs"]}
    # Only the N most recent tips are searched: the drugs tip is the older of the two.
    client.application.config["TRIAGE_SEARCH_BOUND"] = 1
    assert found(client, "tu xoai") == set()
    assert found(client, "69A12345") == {tips["plate"]}
    page = client.get("/triage/search/", query_string={"q": "xoai"}).get_data(as_text=True)
    summary = re.search(r'<p id="search-summary">([^<]*)</p>', page)
    assert summary is not None and re.findall(r"\d+", summary.group(1)) == ["0", "1"]


def test_one_audit_event_per_search_without_the_query(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    assert found(client, "0912345678") == {tips["drugs"]}
    assert client.get("/triage/search/", query_string={"q": "x"}).status_code == 200  # too short
    with runtime.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.action == "search")))
        everything = " ".join(
            f"{e.object_id} {e.detail} {e.client_address}"
            for e in session.scalars(select(AuditEvent))
        )
    assert len(events) == 1
    assert events[0].detail == {"results": "1", "searched": "2", "tips": tips["drugs"]}
    assert events[0].object_id is None
    assert "0912" not in everything and "345" not in everything


def test_a_query_under_3_characters_reads_nothing(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    """A 2-character query used to decrypt up to the bound and show text from every tip."""
    login(client, "canbo", units["totp:canbo"])
    page = client.get("/triage/search/", query_string={"q": "ma"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hãy nhập từ 3 đến 100 ký tự." in html
    assert not re.findall(r'href="/triage/tips/([a-z0-9]+)"', html)
    with runtime.sessions() as session:
        assert not list(session.scalars(select(AuditEvent).where(AuditEvent.action == "search")))


def test_the_tips_a_search_shows_are_audited_and_count_as_opens(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    from datetime import timedelta

    from tipline.audit import OPEN_BURST, AnomalyRules, anomalies
    from tipline.models import utcnow

    login(client, "chihuy", units["totp:chihuy"])
    shown = found(client, "0912")
    assert shown == {tips["drugs"], tips["province"]}
    with runtime.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "search")).one()
        assert set(event.detail["tips"].split()) == shown
        flags = anomalies(
            session,
            since=utcnow() - timedelta(hours=1),
            rules=AnomalyRules(burst_opens=2),
        )
    bursts = [f for f in flags if f.kind == OPEN_BURST]
    assert len(bursts) == 1 and bursts[0].count == 2 and bursts[0].actor_name == "chihuy"
