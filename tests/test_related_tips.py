"""Related tips on the tip page (issue 18): suggestions from shared phone numbers and plates
(the search's decrypt-and-match, audited like a search), links between tips, and marking a
duplicate only after a confirmation that states the consequence."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from tests.conftest import COMMUNE_OA, PROVINCE_OA
from tests.test_search import send
from tests.triage_helpers import login, post_form
from tipline.models import AuditEvent, Holder, KeyGrant, Subject, Tip, TipLink, utcnow
from tipline.retention import shred_tip
from tipline.runtime import Runtime
from triage.related import identifiers, normalised_code

THEFT = "Trộm xe máy biển số 69A-123.45, người bán gọi 0912 345 678"
AGAIN = "Lại thấy xe 69a 12345 ở chợ Đầm Dơi, chủ xe SĐT +84912345678"
PHONE_ONLY = "Có người gọi số 0912.345.678 hỏi mua đồ trộm"
UNRELATED = "Đánh bạc ở nhà số 5 hẻm 12, gọi 0988 777 666"


@pytest.fixture
def tips(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> dict[str, str]:
    """Four tips at Lương Thế Trân and one at the province (another officer's units)."""
    made = {}
    for n, (name, text, oa) in enumerate(
        [
            ("theft", THEFT, COMMUNE_OA),
            ("again", AGAIN, COMMUNE_OA),
            ("phone", PHONE_ONLY, COMMUNE_OA),
            ("unrelated", UNRELATED, COMMUNE_OA),
            ("province", "Xe 69A-123.45 chở hàng lậu ở Cà Mau", PROVINCE_OA),
        ]
    ):
        made[name] = send(client, runtime, text, f"r-{n}", oa, f"20{n}")
    return made


def receipt(runtime: Runtime, public_id: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Tip.receipt_code).where(Tip.public_id == public_id)).one()


def status(runtime: Runtime, public_id: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(Tip.status).where(Tip.public_id == public_id)).one()


def suggested(client: FlaskClient, public_id: str) -> set[str]:
    page = client.get(f"/triage/tips/{public_id}/related", query_string={"fragment": "1"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return set(re.findall(r'<li class="suggestion" data-tip="([a-z0-9]+)"', html))


def test_identifiers_are_phone_numbers_and_plates_in_every_written_form() -> None:
    found = identifiers([THEFT, AGAIN, "SĐT 0290 3831 234; xe 51F1-234.56; 30E 1234"])
    assert [(i.kind, i.value) for i in found] == [
        ("plate", "69A12345"),
        ("phone", "0912345678"),
        ("phone", "02903831234"),
        ("plate", "51F123456"),
        ("plate", "30E1234"),
    ]
    assert found[0].shown == "69A-123.45" and found[1].shown == "0912 345 678"
    # Not numbers: a house number, a date, a longer run of digits, a 113 call.
    assert identifiers(["nhà số 5 hẻm 12, ngày 12/10/2025, mã 109123456789, gọi 113"]) == []
    assert normalised_code(" tl-abcd efgh ") == "TL-ABCD-EFGH"
    assert normalised_code("tlabcdefgh") == "TL-ABCD-EFGH"


def test_marking_a_duplicate_asks_first_and_states_the_consequence(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    """It used to close the tip at once, from one click, without saying what follows."""
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tips['again']}"
    original = receipt(runtime, tips["theft"])
    asked = post_form(client, url, f"{url}/duplicate", {"receipt_code": original.lower()})
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert 'id="confirm"' in html and original in html
    assert "kết thúc" in html and "rời khỏi hộp tin báo" in html  # says what follows
    assert status(runtime, tips["again"]) == "new"  # nothing changed yet
    done = post_form(
        client, url, f"{url}/duplicate", {"receipt_code": original.lower(), "confirm": "1"}
    )
    assert done.status_code == 302
    assert status(runtime, tips["again"]) == "duplicate"
    # A code of no tip of the officer's units: refused before any question, nothing changed.
    other = receipt(runtime, tips["province"])
    refused = post_form(
        client, url, f"/triage/tips/{tips['phone']}/duplicate", {"receipt_code": other}
    )
    assert refused.status_code == 302 and status(runtime, tips["phone"]) == "new"


def test_a_duplicate_of_a_tip_the_officer_cannot_open_is_refused(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    """The original was checked by its unit alone: a tip of the officer's unit that no key
    chain of theirs opens (its grant gone, or the tip deleted under retention) could be named
    as the original, and the closed tip would link to it. Linking checks the key chain; so
    does marking a duplicate now."""
    login(client, "canbo", units["totp:canbo"])
    url = f"/triage/tips/{tips['again']}"
    with runtime.sessions() as session, session.begin():
        theft = session.scalars(select(Tip).where(Tip.public_id == tips["theft"])).one()
        shred_tip(session, runtime.config, theft, utcnow())
        phone = session.scalars(select(Tip).where(Tip.public_id == tips["phone"])).one()
        session.execute(
            delete(KeyGrant).where(
                KeyGrant.subject_kind == Subject.TIP,
                KeyGrant.subject_id == phone.id,
                KeyGrant.holder_kind == Holder.UNIT_KEY,
            )
        )
    for original in ("theft", "phone"):
        code = receipt(runtime, tips[original])
        for confirm in ({}, {"confirm": "1"}):
            answer = post_form(client, url, f"{url}/duplicate", {"receipt_code": code, **confirm})
            assert answer.status_code == 302, (original, confirm)
            assert 'id="confirm"' not in answer.get_data(as_text=True)
            assert status(runtime, tips["again"]) == "new", (original, confirm)
    # A tip the officer opens is still accepted.
    code = receipt(runtime, tips["unrelated"])
    post_form(client, url, f"{url}/duplicate", {"receipt_code": code, "confirm": "1"})
    assert status(runtime, tips["again"]) == "duplicate"


def test_suggestions_are_tips_sharing_a_number_or_plate_within_the_officers_units(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    page = client.get(f"/triage/tips/{tips['theft']}").get_data(as_text=True)
    # The numbers of the open tip are shown; looking for them is a click (nothing audited yet).
    assert 'id="tip-numbers"' in page and "69A-123.45, 0912 345 678" in page
    with runtime.sessions() as session:
        assert not session.scalars(select(AuditEvent).where(AuditEvent.action == "search")).all()
    # The same plate written "69a 12345", the same phone as +84…, and 0912.345.678; not the
    # province's tip (another unit's, though the commander would see it), not the unrelated one.
    assert suggested(client, tips["theft"]) == {tips["again"], tips["phone"]}
    html = client.get(
        f"/triage/tips/{tips['theft']}/related", query_string={"fragment": "1"}
    ).get_data(as_text=True)
    assert "<html" not in html and "Số trùng: 69A-123.45, 0912 345 678" in html
    assert "Nguồn" not in html  # never the informant's pseudonym
    assert suggested(client, tips["unrelated"]) == set()
    commander = client.application.test_client()
    login(commander, "chihuy", units["totp:chihuy"])
    assert suggested(commander, tips["theft"]) == {tips["again"], tips["phone"], tips["province"]}
    other = client.application.test_client()
    login(other, "canbo2", units["totp:canbo2"])
    assert other.get(f"/triage/tips/{tips['theft']}/related").status_code == 403
    # Without script: a page of its own, same content.
    full = client.get(f"/triage/tips/{tips['theft']}/related").get_data(as_text=True)
    assert "<html" in full and 'id="related-page"' in full
    # The bound is the search's: only the N most recent tips are read.
    client.application.config["TRIAGE_SEARCH_BOUND"] = 1
    assert suggested(client, tips["theft"]) == set()  # the newest only: the unrelated one
    client.application.config["TRIAGE_SEARCH_BOUND"] = 2
    assert suggested(client, tips["theft"]) == {tips["phone"]}


def test_suggestions_are_audited_like_a_search_without_the_numbers(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    from datetime import timedelta

    from tipline.audit import OPEN_BURST, AnomalyRules, anomalies
    from tipline.models import utcnow

    login(client, "canbo", units["totp:canbo"])
    assert suggested(client, tips["theft"]) == {tips["again"], tips["phone"]}
    with runtime.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "search")).one()
        everything = " ".join(
            f"{e.object_id} {e.detail}" for e in session.scalars(select(AuditEvent))
        )
        flags = anomalies(
            session, since=utcnow() - timedelta(hours=1), rules=AnomalyRules(burst_opens=2)
        )
    assert event.object_id == tips["theft"]
    assert event.detail["related"] == "1" and event.detail["results"] == "2"
    assert set(event.detail["tips"].split()) == {tips["again"], tips["phone"]}
    assert "0912" not in everything and "69A" not in everything.upper()
    # The tips shown count as opens for the auditor's burst flag.
    assert [f.count for f in flags if f.kind == OPEN_BURST] == [2]


def test_linking_related_tips_shows_on_both_and_is_audited_on_both(
    client: FlaskClient, units: dict[str, str], tips: dict[str, str], runtime: Runtime
) -> None:
    login(client, "canbo", units["totp:canbo"])
    theft, again = tips["theft"], tips["again"]
    url = f"/triage/tips/{theft}"
    code = receipt(runtime, again)
    # Typed without dashes, in lower case: the same code.
    done = post_form(client, url, f"{url}/link", {"receipt_code": code.replace("-", "").lower()})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"{url}#related")
    for one, other in ((theft, again), (again, theft)):
        page = client.get(f"/triage/tips/{one}").get_data(as_text=True)
        links = page[page.index('id="tip-links"') : page.index('id="form-link"')]
        assert receipt(runtime, other) in links and f"/triage/tips/{other}" in links
    # Once only; the tip itself and a tip of another unit are refused alike, nothing stored.
    again_page = post_form(client, url, f"{url}/link", {"receipt_code": code})
    assert again_page.status_code == 302
    for refused in (receipt(runtime, theft), receipt(runtime, tips["province"]), "TL-0000-0000"):
        post_form(client, url, f"{url}/link", {"receipt_code": refused})
    assert "Không có tin báo nào khác" in client.get(url).get_data(as_text=True)
    with runtime.sessions() as session:
        assert len(session.scalars(select(TipLink)).all()) == 1
        linked = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "tip_link").order_by(AuditEvent.seq)
        ).all()
    assert [(e.object_id, e.detail) for e in linked] == [
        (theft, {"tip": again}),
        (again, {"tip": theft}),
    ]
    # A suggestion of a linked tip says so instead of offering the link again.
    html = client.get(f"{url}/related", query_string={"fragment": "1"}).get_data(as_text=True)
    row = html[html.index(f'data-tip="{again}"') :].split("</li>")[0]
    assert "đã liên kết" in row and "suggestion-link" not in row
    # Someone of another unit can neither link nor unlink this tip.
    other = client.application.test_client()
    login(other, "canbo2", units["totp:canbo2"])
    page = other.get("/triage/").get_data(as_text=True)
    from tests.triage_helpers import csrf_from

    token = csrf_from(page)
    assert other.post(f"{url}/unlink", data={"csrf_token": token, "tip": again}).status_code == 403
    # Unlinked from the other end: gone from both pages, audited on both tips.
    back = f"/triage/tips/{again}"
    assert post_form(client, back, f"{back}/unlink", {"tip": theft}).status_code == 302
    assert 'id="no-links"' in client.get(url).get_data(as_text=True)
    with runtime.sessions() as session:
        assert session.scalars(select(TipLink)).all() == []
        unlinked = session.scalars(select(AuditEvent).where(AuditEvent.action == "tip_unlink"))
        assert sorted(e.object_id or "" for e in unlinked) == sorted([theft, again])


def test_the_tip_page_draws_the_shared_location_on_the_commune_map(
    client: FlaskClient, units: dict[str, str], runtime: Runtime
) -> None:
    from tests.conftest import expand
    from tests.test_routing_dispatch import location_event
    from tests.zalo_events import USER, signed_headers

    login(client, "canbo", units["totp:canbo"])
    # A tip written at the commune's OA, then the informant shares a point inside it.
    public_id = send(client, runtime, "Có trộm ở ấp 3", "p-1", COMMUNE_OA, USER)
    raw = location_event(9.0973, 105.083, "p-2", oa=COMMUNE_OA)
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    expand(runtime)
    page = client.get(f"/triage/tips/{public_id}").get_data(as_text=True)
    assert 'id="tip-map"' in page and 'role="img"' in page
    assert 'class="area place-home"' in page and page.count('class="area place-near"') >= 3
    caption = re.search(r'<figcaption id="place-caption">([^<]*)</figcaption>', page)
    assert caption is not None
    assert "9.09730, 105.08300" in caption[1] and "Công an xã Lương Thế Trân" in caption[1]
    assert "xã, phường mã 32137" in caption[1]  # a neighbour this install has no unit for
    assert 'id="shared-point"' in page
