"""The web and intake tiers hold no key that opens anything.

Transit keys are not configuration at all: workers make them in short epochs and keep their
private halves in the volatile key store (tipline.transit); the web tiers read only the public
halves from the database. The one configured key pair left, the relay key (it seals the OAs'
tokens), reaches the web tiers as its public half (``TIPLINE_RELAY_PUBLIC_KEY``). The web
tiers still take webhooks and web reports, and nothing there can open what they sealed.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from keys import EnvelopeError, generate_keypair, open_sealed
from tests.conftest import expand
from tests.triage_helpers import csrf_from
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config, MissingSecret, public_halves
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import InboundEvent, ReplyAddress, Tip
from tipline.reply_addresses import open_address
from tipline.runtime import Runtime, install


def public_only(env: dict[str, str], full: Config) -> Config:
    return Config.from_env({**env, **public_halves(full.secrets)}).with_overrides(
        kdf_cost=full.kdf_cost, testing=True, pow_bits=1
    )


@pytest.mark.usefixtures("units")
def test_web_tiers_on_public_halves_take_tips_that_only_workers_open(
    env: dict[str, str], config: Config, runtime: Runtime
) -> None:
    web = public_only(env, config)
    assert web.secrets.relay_private is None
    assert not hasattr(web.secrets, "transit_private")  # no transit key in any configuration
    with pytest.raises(MissingSecret, match="TIPLINE_RELAY_KEY"):
        _ = web.secrets.relay_key

    intake = create_app(web, staff_ui=False)
    raw = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id="public-only-1")
    assert (
        intake.test_client()
        .post("/zalo/webhook", data=raw, headers=signed_headers(raw))
        .status_code
        == 200
    )

    staff = create_app(web)
    client = staff.test_client()
    with runtime.sessions() as db:
        from tipline.models import Unit

        unit = db.scalars(select(Unit.public_id).where(Unit.code == "v2025:32134")).one()
    page = client.get(f"/bao-tin?don-vi={unit}").get_data(as_text=True)
    challenge = re.search(r'data-challenge="([^"]+)"', page)
    assert challenge
    from keys import solve_work

    sent = client.post(
        "/bao-tin",
        data={
            "csrf_token": csrf_from(page),
            "challenge": challenge.group(1),
            "unit": unit,
            "text": "Đánh bạc ở quán cà phê",
            "nonce": solve_work(challenge.group(1), 1),
        },
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)

    # The worker, with the private halves, opens and dispatches both.
    install(runtime)
    assert expand(runtime) == 2
    with runtime.sessions() as db:
        tips = db.scalars(select(Tip.public_id)).all()
        assert db.scalars(select(InboundEvent.sealed_event)).all() == [None, None]
    assert [dispatch_tip(t) for t in tips] == ["dispatched", "dispatched"]
    with runtime.sessions() as db:
        address = db.scalars(select(ReplyAddress).where(ReplyAddress.oa_id != "web")).one()
        assert address.sealed_address is not None
        # Only the key in the volatile store opens it; no configured key does.
        assert open_address(runtime.keystore, address.informant_alias, address.sealed_address)
        for key in (config.secrets.relay_key, generate_keypair()):
            with pytest.raises(EnvelopeError):
                open_sealed(
                    key, address.sealed_address, purpose="reply_address", binding=address.binding
                )


def test_a_public_half_must_match_its_private_key(env: dict[str, str], config: Config) -> None:
    other = base64.b64encode(generate_keypair().public_key.to_bytes()).decode()
    private = base64.b64encode(config.secrets.relay_key.to_bytes()).decode()
    with pytest.raises(ValueError, match="TIPLINE_RELAY_PUBLIC_KEY is not the public half"):
        Config.from_env({**env, "TIPLINE_RELAY_KEY": private, "TIPLINE_RELAY_PUBLIC_KEY": other})


@pytest.mark.parametrize("retired", ["TIPLINE_TRANSIT_KEY", "TIPLINE_TRANSIT_PUBLIC_KEY"])
def test_a_configured_transit_key_is_refused(
    env: dict[str, str], retired: str, tmp_path: Path
) -> None:
    """Nobody keeps the old long-lived transit key by mistake: it opened every tip in flight."""
    value = base64.b64encode(generate_keypair().to_bytes()).decode()
    with pytest.raises(ValueError, match=f"{retired} is no longer used"):
        Config.from_env({**env, retired: value})
    (tmp_path / "old_key").write_text(value)
    with pytest.raises(ValueError, match=f"{retired} is no longer used"):
        Config.from_env({**env, f"{retired}_FILE": str(tmp_path / "old_key")})


@pytest.mark.parametrize("minutes", ["0", "21", "60"])
def test_a_transit_epoch_longer_than_its_keys_live_is_refused(
    env: dict[str, str], minutes: str
) -> None:
    with pytest.raises(ValueError, match="TIPLINE_TRANSIT_EPOCH_MINUTES"):
        Config.from_env({**env, "TIPLINE_TRANSIT_EPOCH_MINUTES": minutes})


def test_required_secrets_are_never_generated(env: dict[str, str], tmp_path: object) -> None:
    fresh = {**env, "TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_REQUIRE_SECRETS": "1"}
    with pytest.raises(ValueError, match=r"TIPLINE_SECRET_KEY .* must be set"):
        Config.from_env(fresh)
    given = {
        **fresh,
        "TIPLINE_SECRET_KEY": "k" * 64,
        "TIPLINE_ALIAS_KEY": "a" * 64,
    }
    with pytest.raises(ValueError, match=r"TIPLINE_RELAY_KEY .* must be set"):
        Config.from_env(given)


def test_keys_public_prints_settings_that_load(env: dict[str, str], config: Config) -> None:
    import os

    done = subprocess.run(
        [sys.executable, "-m", "tipline.cli", "keys", "public"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    settings = dict(line.split("=", 1) for line in done.stdout.split())
    assert settings == public_halves(config.secrets)


@pytest.mark.usefixtures("units")
def test_the_intake_tier_reads_and_writes_no_session(config: Config, runtime: Runtime) -> None:
    """Where Zalo and anyone else reach, no cookie is read or set: a session cookie signed with
    the Flask secret, sent along with a webhook, opens nothing there."""
    from flask import session
    from flask.sessions import SecureCookieSessionInterface

    intake = create_app(config, staff_ui=False)
    signed = SecureCookieSessionInterface().get_signing_serializer(intake)
    assert signed is not None
    cookie = signed.dumps({"_user_id": "1"})
    client = intake.test_client()
    client.set_cookie("session", cookie)
    raw = event(text="Có người buôn bán ma túy ở hẻm 12", msg_id="no-session-1")
    answer = client.post("/zalo/webhook", data=raw, headers=signed_headers(raw))
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers
    with intake.test_request_context("/", headers={"Cookie": f"session={cookie}"}):
        intake.preprocess_request()
        from flask import globals as flask_globals

        assert not flask_globals.request_ctx.session  # the null session: nothing was read
        with pytest.raises(RuntimeError):
            session["_user_id"] = "2"
