"""The public tier: the anonymous web form and the webhook in a pool of their own.

Every POST /tra-cuu runs a 64 MiB Argon2id: served by the staff processes, the public could
starve the officers' UI. ``TIPLINE_TIER=public`` (``tipline.wsgi_public:app``) serves /bao-tin,
/tra-cuu and the webhook in their own gunicorn pool, and not one staff route.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import expand
from tests.test_web_intake import receipt_of, work_for
from tests.triage_helpers import csrf_from
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config
from tipline.models import Tip, Unit
from tipline.runtime import Runtime, install

BITS = 4
STAFF_PREFIXES = ("/login", "/logout", "/triage", "/audit", "/admin")


@pytest.fixture
def public(config: Config, runtime: Runtime, units: dict[str, str]) -> Flask:
    runtime.config = runtime.config.with_overrides(pow_bits=BITS)
    app = create_app(config, staff_ui=False, public_form=True)
    app.extensions["tipline"] = install(runtime)
    return app


def test_the_public_tier_serves_the_web_form_and_the_webhook_and_no_staff_route(
    public: Flask,
) -> None:
    rules = {rule.rule for rule in public.url_map.iter_rules()}
    assert {"/bao-tin", "/tra-cuu", "/zalo/webhook", "/healthz", "/lang/<code>"} <= rules
    assert [r for r in rules if r.startswith(STAFF_PREFIXES)] == []
    assert not {"auth", "inbox", "tips", "audit_ui", "admin", "search"} & set(public.blueprints)
    client = public.test_client()
    for path in ("/login", "/triage/", "/audit/", "/admin/"):
        assert client.get(path).status_code == 404, path


def test_an_informant_reports_and_follows_up_on_the_public_tier(
    public: Flask, runtime: Runtime
) -> None:
    client = public.test_client()
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    page = client.get(f"/bao-tin?don-vi={unit}").get_data(as_text=True)
    assert 'href="/login"' not in page  # no link to a login this tier does not have
    challenge = re.search(r'data-challenge="([^"]+)"', page)
    assert challenge
    sent = client.post(
        "/bao-tin",
        data={
            "csrf_token": csrf_from(page),
            "unit": unit,
            "text": "Có người bán ma túy ở chợ",
            **work_for(page),
        },
    )
    assert sent.status_code == 200
    code, passphrase = receipt_of(sent)
    assert expand(runtime) == 1
    lookup = client.get("/tra-cuu").get_data(as_text=True)
    data = {"csrf_token": csrf_from(lookup), "code": code, "passphrase": passphrase}
    status = client.post("/tra-cuu", data=data | work_for(lookup))
    assert status.status_code == 200 and "Có người bán ma túy ở chợ" in status.get_data(
        as_text=True
    )
    switched = client.post(
        "/lang/en",
        data={"csrf_token": csrf_from(lookup)},
        headers={"Referer": "http://localhost/tra-cuu"},
    )
    assert switched.status_code == 302 and switched.location.endswith("/tra-cuu")
    assert "Follow up on a report" in client.get("/tra-cuu").get_data(as_text=True)
    assert client.get("/no-such-page").status_code == 404  # the error page renders here too


def test_gunicorn_serves_the_public_tier_from_its_own_entry_point() -> None:
    import runpy

    from tests.test_deploy import GUNICORN_CONF

    conf = runpy.run_path(str(GUNICORN_CONF), init_globals={}, run_name="gunicorn_conf")
    assert conf["TIERS"]["public"] == ("tipline.wsgi_public:app", "127.0.0.1:8002")


def test_the_public_tier_takes_zalo_events(public: Flask, runtime: Runtime) -> None:
    client: FlaskClient = public.test_client()
    raw = event(msg_id="public-tier-1")
    assert client.post("/zalo/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    assert expand(runtime) == 1
    with runtime.sessions() as db:
        assert db.scalars(select(Tip.channel)).one() == "zalo"
