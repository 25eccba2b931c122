"""Each production tier (``TIPLINE_TIER``) reads only the settings it uses and falls back to
nothing: no SQLite file in its data dir, no embedded Redis, no generated secret.

The intake tier faces the internet; it was given (and loaded) the Flask secret, the audit
signing key and the Zalo app secret. Now a tier ignores every secret it is not meant to hold,
even when its file is named, and refuses to start, naming what is missing, when a database or
Redis URL (or a secret it needs) is not given. ``tipline demo`` and development processes
(no ``TIPLINE_TIER``) keep their embedded defaults.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keys import CERTIFICATION_LABEL, generate_keypair, generate_signing_key, new_token
from tipline.config import TIERS, Config, ConfigError, MissingSecret

ROOT = Path(__file__).resolve().parent.parent


def _secret_files(where: Path) -> dict[str, str]:
    """Every setting as a file, as deploy/make-secrets.sh writes them: ``<NAME>_FILE``."""
    relay = generate_keypair()
    audit = generate_signing_key()
    values = {
        "TIPLINE_DATABASE_URL": f"sqlite:///{where / 'elsewhere.db'}",
        "TIPLINE_REDIS_URL": "redis://:pw@127.0.0.1:1/0",
        "TIPLINE_KEYSTORE_URL": "redis://:pw@127.0.0.1:2/0",
        "TIPLINE_SECRET_KEY": new_token(32),
        "TIPLINE_RELAY_KEY": base64.b64encode(relay.to_bytes()).decode(),
        "TIPLINE_RELAY_PUBLIC_KEY": base64.b64encode(relay.public_key.to_bytes()).decode(),
        "TIPLINE_ALIAS_KEY": new_token(32),
        "TIPLINE_AUDIT_SIGNING_KEY": base64.b64encode(audit.to_bytes()).decode(),
        # The key-certification key's public half, as `tipline keys public` prints it.
        "TIPLINE_KEY_VERIFY_KEY": base64.b64encode(
            audit.derive(CERTIFICATION_LABEL).verify_key.raw
        ).decode(),
        "ZALO_APP_ID": "3608465248940903967",
        "ZALO_OA_SECRET_KEY": "oa-secret",
        "ZALO_APP_SECRET": "app-secret",
    }
    where.mkdir(exist_ok=True)
    env = {}
    for name, value in values.items():
        path = where / name.lower()
        path.write_text(value + "\n")
        env[f"{name}_FILE"] = str(path)
    return env


def _unreadable(env: dict[str, str], names: set[str]) -> dict[str, str]:
    """``env`` with the files of ``names`` replaced by paths that do not exist: reading one
    would fail loudly, so a tier that starts did not read them."""
    return {
        k: ("/nonexistent/" + k if k.removesuffix("_FILE") in names else v) for k, v in env.items()
    }


def test_the_intake_tier_loads_only_its_own_secrets(tmp_path: Path) -> None:
    files = _secret_files(tmp_path / "credentials")
    not_intake = {
        "TIPLINE_SECRET_KEY",
        "TIPLINE_AUDIT_SIGNING_KEY",
        "ZALO_APP_SECRET",
        "TIPLINE_RELAY_KEY",
        "TIPLINE_RELAY_PUBLIC_KEY",
        "TIPLINE_KEYSTORE_URL",
    }
    assert not_intake.isdisjoint(TIERS["intake"].names)
    data = tmp_path / "data"
    env = {
        "TIPLINE_TIER": "intake",
        "TIPLINE_DATA_DIR": str(data),
        **_unreadable(files, not_intake),
    }
    config = Config.from_env(env)
    assert config.tier == "intake"
    assert config.secret_key == "" and config.zalo_app_secret == ""
    assert config.keystore_url is None
    assert config.zalo_oa_secret_key == "oa-secret" and config.zalo_app_id
    with pytest.raises(MissingSecret):
        config.secrets.audit_signing_key  # noqa: B018
    with pytest.raises(MissingSecret):
        config.secrets.relay_public  # noqa: B018
    # It checks stored public keys with the certification key's public half, certifies none.
    assert config.secrets.key_certifier is None and config.secrets.key_verifier is not None
    assert not (data / "secrets").exists()


def test_the_staff_tier_never_holds_the_relay_key_or_the_key_store(tmp_path: Path) -> None:
    files = _secret_files(tmp_path / "credentials")
    data = tmp_path / "data"
    config = Config.from_env({"TIPLINE_TIER": "staff", "TIPLINE_DATA_DIR": str(data), **files})
    assert config.secrets.relay_private is None and config.keystore_url is None
    assert config.secrets.relay_public is not None and config.secret_key
    # The staff tier certifies the unit and officer keys its admin pages create (key_trust).
    assert config.secrets.audit_signer is not None
    worker = Config.from_env({"TIPLINE_TIER": "worker", "TIPLINE_DATA_DIR": str(data), **files})
    assert worker.secrets.relay_key is not None and worker.keystore_url
    assert worker.secret_key == "" and worker.zalo_oa_secret_key == ""
    assert worker.secrets.audit_signing_key is not None
    assert not (data / "secrets").exists()


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_a_tier_without_its_database_redis_or_secret_refuses_to_start(
    tier: str, tmp_path: Path
) -> None:
    files = _secret_files(tmp_path / "credentials")
    data = tmp_path / "data"
    for name in TIERS[tier].required:
        env = {"TIPLINE_TIER": tier, "TIPLINE_DATA_DIR": str(data), **files}
        del env[f"{name}_FILE"]
        with pytest.raises(ConfigError, match=name):
            Config.from_env(env)
    assert not (data / "tipline.db").exists() and not (data / "secrets").exists()
    assert not (data / "redis.db").exists()


def test_a_gunicorn_tier_without_a_database_url_says_so_and_writes_nothing(
    tmp_path: Path,
) -> None:
    files = _secret_files(tmp_path / "credentials")
    del files["TIPLINE_DATABASE_URL_FILE"]
    data = tmp_path / "data"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "ZALO_"))}
    done = subprocess.run(
        [sys.executable, "-c", "import tipline.wsgi_intake"],
        env={**base, **files, "TIPLINE_TIER": "intake", "TIPLINE_DATA_DIR": str(data)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "TIPLINE_DATABASE_URL" in done.stderr and "SQLite" in done.stderr
    assert not any(data.rglob("*.db"))


def test_an_unknown_tier_is_refused_and_no_tier_keeps_the_development_defaults(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="TIPLINE_TIER"):
        Config.from_env({"TIPLINE_TIER": "intak", "TIPLINE_DATA_DIR": str(tmp_path)})
    config = Config.from_env({"TIPLINE_DATA_DIR": str(tmp_path)})
    assert config.tier == "" and config.database_url.startswith("sqlite:///")
    assert config.secret_key and config.secrets.audit_signing_key is not None


def test_gunicorn_with_the_shipped_conf_is_a_production_tier_even_unnamed(tmp_path: Path) -> None:
    """deploy/gunicorn.conf.py's default tier (staff) reaches the app: without a database URL
    the workers do not boot, and say why; nothing is written in the data dir."""
    files = _secret_files(tmp_path / "credentials")
    del files["TIPLINE_DATABASE_URL_FILE"]
    data = tmp_path / "data"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TIPLINE_", "ZALO_"))}
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py"),
         "--bind", "127.0.0.1:0", "--workers", "1"],
        env={**base, **files, "TIPLINE_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)},
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "TIPLINE_TIER=staff: TIPLINE_DATABASE_URL must be set" in done.stderr, done.stderr[
        -2000:
    ]
    assert not any(data.rglob("*.db"))
