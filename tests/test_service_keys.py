"""The web and intake tiers can run on the public halves of the transit and relay keys.

DESIGN.md: the relay key opens reply addresses (Zalo ids) and the transit key opens queued
events; only the workers need them. Given ``TIPLINE_*_PUBLIC_KEY`` instead, the web tiers
still take webhooks and web reports, and nothing there can open what they sealed.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from keys import EnvelopeError, generate_keypair
from tests.conftest import expand
from tests.triage_helpers import csrf_from
from tests.zalo_events import event, signed_headers
from tipline.app import create_app
from tipline.config import Config, MissingSecret, public_halves
from tipline.jobs.dispatch import dispatch_tip
from tipline.models import InboundEvent, ReplyAddress, Tip
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
    assert web.secrets.transit_private is None and web.secrets.relay_private is None
    with pytest.raises(MissingSecret, match="TIPLINE_TRANSIT_KEY"):
        _ = web.secrets.transit_key
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
        from keys import open_sealed

        stranger = generate_keypair()  # what a web machine could hold: not the relay key
        with pytest.raises(EnvelopeError):
            open_sealed(
                stranger, address.sealed_address, purpose="reply_address", binding=address.binding
            )
        open_sealed(
            config.secrets.relay_key,
            address.sealed_address,
            purpose="reply_address",
            binding=address.binding,
        )


def test_a_public_half_must_match_its_private_key(env: dict[str, str], config: Config) -> None:
    other = base64.b64encode(generate_keypair().public_key.to_bytes()).decode()
    private = base64.b64encode(config.secrets.transit_key.to_bytes()).decode()
    with pytest.raises(ValueError, match="TIPLINE_TRANSIT_PUBLIC_KEY is not the public half"):
        Config.from_env(
            {**env, "TIPLINE_TRANSIT_KEY": private, "TIPLINE_TRANSIT_PUBLIC_KEY": other}
        )


def test_required_secrets_are_never_generated(env: dict[str, str], tmp_path: object) -> None:
    fresh = {**env, "TIPLINE_DATA_DIR": str(tmp_path), "TIPLINE_REQUIRE_SECRETS": "1"}
    with pytest.raises(ValueError, match=r"TIPLINE_SECRET_KEY .* must be set"):
        Config.from_env(fresh)
    given = {
        **fresh,
        "TIPLINE_SECRET_KEY": "k" * 64,
        "TIPLINE_ALIAS_KEY": "a" * 64,
        "TIPLINE_TRANSIT_KEY": base64.b64encode(generate_keypair().to_bytes()).decode(),
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
