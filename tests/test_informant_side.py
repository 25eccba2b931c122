"""The informant's side (issue 18): the emergency line and the commands everywhere they read,
the law the secrecy rests on, a place chosen by name or by the phone, and a /tra-cuu that
forgives what phone keyboards do to a code and a passphrase."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import expand
from tests.test_web_intake import commune, look_up, receipt_of, report
from tests.triage_helpers import login
from tipline.jobs.dispatch import acknowledgement_text, dispatch_tip
from tipline.models import Channel, Tip, Unit
from tipline.runtime import Runtime

pytestmark = pytest.mark.usefixtures("units", "low_difficulty")

EMERGENCY = "113"
CRIMINAL_PROCEDURE = "Bộ luật Tố tụng hình sự"


@pytest.fixture
def low_difficulty(runtime: Runtime) -> None:
    runtime.config = runtime.config.with_overrides(pow_bits=6)


def _tip(runtime: Runtime, channel: Channel) -> tuple[Tip, Unit]:
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit).where(Unit.code == "v2025:32134")).one()
        tip = Tip(receipt_code="TL-ABCD-EFGH", channel=channel)
        db.expunge(unit)
        return tip, unit


@pytest.mark.parametrize("channel", [Channel.ZALO, Channel.WEB])
def test_the_acknowledgement_gives_113_the_commands_and_the_right_law(
    runtime: Runtime, channel: Channel
) -> None:
    tip, unit = _tip(runtime, channel)
    text = acknowledgement_text(tip, unit)
    assert EMERGENCY in text
    assert CRIMINAL_PROCEDURE in text
    # Crime reports are not complaints (tố cáo): that law does not govern them.
    assert "Luật Tố cáo" not in text
    if channel == Channel.ZALO:
        assert "tình trạng" in text and "XÓA" in text


@pytest.mark.parametrize("path", ["/bao-tin", "/tra-cuu"])
def test_the_public_pages_show_the_emergency_line(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    assert 'href="tel:113"' in html


def test_the_receipt_shows_the_emergency_line(client: FlaskClient, runtime: Runtime) -> None:
    html = report(client, commune(runtime), "Có người bán ma túy").get_data(as_text=True)
    assert 'href="tel:113"' in html


def test_the_poster_shows_the_emergency_line_and_the_commands(
    client: FlaskClient, runtime: Runtime, units: dict[str, str]
) -> None:
    login(client, "canbo", units["totp:canbo"])
    html = client.get(f"/triage/units/{commune(runtime)}/poster").get_data(as_text=True)
    assert EMERGENCY in html and "tình trạng" in html


def test_the_form_asks_for_a_place_by_name_or_the_phones_location(
    client: FlaskClient, runtime: Runtime
) -> None:
    html = client.get("/bao-tin").get_data(as_text=True)
    # No latitude and longitude to type by hand: a place name (with the units' communes
    # offered) and a button that asks the phone.
    assert 'inputmode="decimal"' not in html
    assert 'name="place"' in html and 'list="places"' in html
    assert "Công an xã Cái Nước" in html  # offered in the place list
    assert 'id="use-location"' in html and 'type="hidden" name="lat"' in html
    assert "geolocation.js" in html


def test_a_place_typed_by_name_routes_the_report(client: FlaskClient, runtime: Runtime) -> None:
    province = _public_id(runtime, "v2025:96")
    response = report(client, province, "Có người đánh bạc ăn tiền", place="xã Cái Nước")
    assert response.status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        tip_id = db.scalars(select(Tip.public_id)).one()
    dispatch_tip(tip_id)
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip)).one()
        assert tip.unit is not None and tip.unit.code == "v2025:32128"


def test_a_too_long_place_is_refused_and_nothing_is_stored(
    client: FlaskClient, runtime: Runtime
) -> None:
    response = report(client, commune(runtime), "Trộm chó", place="x" * 500)
    assert response.status_code == 400
    assert expand(runtime) == 0


def _public_id(runtime: Runtime, code: str) -> str:
    with runtime.sessions() as db:
        return db.scalars(select(Unit.public_id).where(Unit.code == code)).one()


def test_tra_cuu_forgives_accents_case_spaces_and_dashes(
    client: FlaskClient, runtime: Runtime
) -> None:
    code, passphrase = receipt_of(report(client, commune(runtime), "Trộm xe máy ở ấp 3"))
    expand(runtime)
    # What a phone does: the code lower case without dashes, spaced; the passphrase with the
    # accents a Vietnamese keyboard adds, capitals and commas.
    typed_code = " " + code.lower().replace("-", " ") + " "
    words = passphrase.split()
    accented = {"a": "á", "o": "ô", "u": "ư", "d": "đ", "e": "ê", "i": "ì", "y": "ý"}
    typed = ", ".join(
        w[0].upper() + "".join(accented.get(ch, ch) for ch in w[1:]) for w in words
    )
    page = look_up(client, typed_code, typed)
    assert page.status_code == 200, page.get_data(as_text=True)
    assert "Trộm xe máy ở ấp 3" in page.get_data(as_text=True)
    # Without the "TL" and the dashes at all, and Crockford's look-alikes (O for 0, I/L for 1).
    bare = code[3:].replace("-", "").replace("0", "o").replace("1", "l")
    assert look_up(client, bare, passphrase).status_code == 200
    # A wrong passphrase is still wrong.
    assert look_up(client, code, " ".join(reversed(words))).status_code == 403
