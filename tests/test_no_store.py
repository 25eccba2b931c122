"""Decrypted pages are never kept by a browser or a proxy: ``Cache-Control: no-store``.

Every response of a logged-in staff session carries it (one hook in triage/), so a tip page,
search results or a file cannot be read back from a shared machine's cache after the officer
logged out; the login steps too (the TOTP secret, a new recovery code).
"""

from __future__ import annotations

import io
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from keys import solve_work
from tests.conftest import expand
from tests.test_media import jpeg_with_gps
from tests.triage_helpers import csrf_from, login
from tipline.jobs.dispatch import dispatch_tip
from tipline.jobs.media import fetch_attachment
from tipline.models import Attachment, Tip, Unit
from tipline.runtime import Runtime

BITS = 4


@pytest.fixture
def web_tip(client: FlaskClient, runtime: Runtime, units: dict[str, str]) -> tuple[str, str]:
    """A web report with a photo, dispatched to Lương Thế Trân, the photo cleaned and stored:
    (tip, attachment) public ids."""
    runtime.config = runtime.config.with_overrides(pow_bits=BITS)
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    page = client.get("/bao-tin").get_data(as_text=True)
    challenge = re.search(r'data-challenge="([^"]+)"', page)
    assert challenge
    sent = client.post(
        "/bao-tin",
        data={
            "csrf_token": csrf_from(page),
            "challenge": challenge.group(1),
            "nonce": solve_work(challenge.group(1), BITS),
            "unit": unit,
            "text": "Ảnh chụp điểm bán ma túy ở chợ",
            "files": [(io.BytesIO(jpeg_with_gps()), "IMG_0042.jpg")],
        },
    )
    assert sent.status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        tip = db.scalars(select(Tip.public_id)).one()
        attachment = db.scalars(select(Attachment.public_id)).one()
    assert dispatch_tip(tip) == "dispatched"
    assert fetch_attachment(attachment) == "stored"
    return tip, attachment


def test_tip_page_search_and_download_are_not_stored(
    client: FlaskClient, units: dict[str, str], web_tip: tuple[str, str]
) -> None:
    tip, attachment = web_tip
    assert login(client, "canbo", units["totp:canbo"]).status_code == 302
    for url, query in [
        (f"/triage/tips/{tip}", {}),
        ("/triage/search/", {"q": "ma tuy"}),
        (f"/triage/tips/{tip}/attachments/{attachment}", {}),
        ("/triage/", {}),
    ]:
        response = client.get(url, query_string=query)
        assert response.status_code == 200, url
        assert response.headers.get("Cache-Control") == "no-store", url
    found = client.get("/triage/search/", query_string={"q": "ma tuy"}).get_data(as_text=True)
    assert f"/triage/tips/{tip}" in found  # the results page did show the tip


def test_the_login_steps_are_not_stored(client: FlaskClient, units: dict[str, str]) -> None:
    """The login page and its answers: what a browser would show again holds nothing, but a
    recovery code or a TOTP secret on a later step must not be kept either."""
    assert client.get("/login").headers.get("Cache-Control") == "no-store"
    assert client.get("/login/recover").headers.get("Cache-Control") == "no-store"
    refused = login(client, "canbo", units["totp:canbo"], password="not the password")
    assert refused.headers.get("Cache-Control") == "no-store"
