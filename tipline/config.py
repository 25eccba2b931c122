"""Typed configuration, read once from the environment (CONTRACT.md's variables).

Secrets never live in the repository: each is taken from its environment variable or, when
unset, generated on first run into a file of mode 0600 in the data dir.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from keys import (
    STANDARD_COST,
    KdfCost,
    PrivateKey,
    PublicKey,
    SigningKey,
    generate_keypair,
    generate_signing_key,
    new_token,
)
from tipline.models.enums import TipStatus

ZALO_API_BASE = "https://openapi.zalo.me"
ZALO_OAUTH_BASE = "https://oauth.zaloapp.com"

# Used only by `tipline demo` when ZALO_* are unset; Zalo never issued these.
DEMO_ZALO_APP_ID = "3608465248940903967"
DEMO_ZALO_OA_SECRET_KEY = "DEMO_OA_SECRET_KEY_NOT_FOR_PRODUCTION"  # noqa: S105  # nosec B105
DEMO_ZALO_APP_SECRET = "DEMO_APP_SECRET_NOT_FOR_PRODUCTION"  # noqa: S105  # nosec B105

# Hosts the media worker may download attachments from ("*." matches any subdomain); Zalo's
# CDNs. TIPLINE_MEDIA_HOSTS replaces the list; in simulator mode the simulator is added.
ZALO_MEDIA_HOSTS = ("*.zdn.vn", "*.zadn.vn", "*.zalo.me", "*.zaloapp.com")

# GPS routing: the ward boundaries shipped in the package (tipline/routing/data/README.md),
# the default of TIPLINE_WARD_BOUNDARIES; another path replaces them, "none" turns them off.
PACKAGED_WARD_BOUNDARIES = Path(__file__).resolve().parent / "routing" / "data" / (
    "vn-wards-2025.geojson.gz"
)


def ward_boundaries_from(value: str | None) -> Path | None:
    """The ward boundaries TIPLINE_WARD_BOUNDARIES names: unset or empty, the packaged ones."""
    if not value:
        return PACKAGED_WARD_BOUNDARIES
    if value.strip().lower() == "none":
        return None
    return Path(value)


# Retention (tipline.retention): days a closed tip is kept after closing, per final status,
# before it is crypto-shredded. TIPLINE_RETENTION_DAYS overrides ("resolved=365,spam=30").
DEFAULT_RETENTION_DAYS: tuple[tuple[str, int], ...] = (
    (TipStatus.RESOLVED, 365),
    (TipStatus.UNFOUNDED, 180),
    (TipStatus.DUPLICATE, 90),
    (TipStatus.SPAM, 30),
)


class MissingSecret(RuntimeError):
    """A private key this process was deliberately not given (it holds the public half only)."""


@dataclass(frozen=True)
class ServiceSecrets:
    """The service's configured keys: the relay key (it seals the OAs' Zalo tokens), the
    alias key and the audit signer.

    Transit keys are not configuration: workers make them in short epochs and keep their
    private halves in the volatile key store only (tipline.transit), as they do each reply
    address's key (tipline.reply_addresses): no configured secret opens a tip or names an
    informant. A process may hold the relay key's public half only
    (``TIPLINE_RELAY_PUBLIC_KEY``): the web tiers seal tokens to it and open nothing.
    """

    relay_public: PublicKey
    alias_key: bytes
    # Signs audit checkpoints (tipline.audit). Auditors pin its public half's fingerprint, so
    # a checkpoint file kept offline proves what the chain's head was when it was exported.
    audit_signing_key: SigningKey
    relay_private: PrivateKey | None = field(default=None, repr=False)

    @property
    def relay_key(self) -> PrivateKey:
        if self.relay_private is None:
            raise MissingSecret("TIPLINE_RELAY_KEY: this process holds the public half only")
        return self.relay_private


@dataclass(frozen=True)
class Config:
    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    secrets: ServiceSecrets = field(repr=False)
    zalo_app_id: str = ""
    zalo_oa_secret_key: str = field(default="", repr=False)
    zalo_app_secret: str = field(default="", repr=False)
    zalo_api_base: str = ZALO_API_BASE
    zalo_oauth_base: str = ZALO_OAUTH_BASE
    ward_boundaries: Path | None = PACKAGED_WARD_BOUNDARIES
    simulator: bool = False
    max_webhook_bytes: int = 64 * 1024
    followup_window: timedelta = timedelta(hours=24)
    sweep_after: timedelta = timedelta(seconds=30)
    kdf_cost: KdfCost = STANDARD_COST
    testing: bool = False
    # Staff sessions end after this long without a request; their unlocked key goes with them.
    session_idle_minutes: int = 30
    # Served over HTTPS (usually by a reverse proxy): secure cookies and HSTS.
    behind_tls: bool = False
    # Where the public reaches the web form (e.g. https://baotin.congan.example.vn): the
    # posters' links. Unset: the address the officer printing the poster used.
    public_url: str = ""
    # The web form's proof of work: leading zero bits of SHA-256 (18: about a second in a
    # phone's browser; tests use fewer).
    pow_bits: int = 18
    # The media worker: allowed hosts, a size cap and a timeout for each download.
    media_hosts: tuple[str, ...] = ZALO_MEDIA_HOSTS
    media_max_bytes: int = 50 * 1024 * 1024
    media_timeout_seconds: float = 30.0
    # The volatile key store (tipline.keystore): a Redis that keeps nothing on disk. Unset:
    # an embedded one beside the embedded Redis.
    keystore_url: str | None = None
    # The operator vouches that the key store persists nothing (its CONFIG is disabled).
    keystore_confirmed_volatile: bool = False
    # How long a transit epoch is current (tipline.transit).
    transit_epoch: timedelta = timedelta(minutes=10)
    # Retention: (final status, days after closing) pairs, and how many days before a tip's
    # end its unit is warned.
    retention_days: tuple[tuple[str, int], ...] = DEFAULT_RETENTION_DAYS
    retention_warn_days: int = 14

    def retention_period(self, status: str) -> timedelta | None:
        """How long a tip closed with ``status`` is kept; None: kept (not a final status)."""
        for name, days in self.retention_days:
            if name == status:
                return timedelta(days=days)
        return None

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = with_file_settings(dict(os.environ if environ is None else environ))
        data_dir = Path(env.get("TIPLINE_DATA_DIR", "./instance")).resolve()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if data_dir.stat().st_mode & 0o077:  # made before, or by something else: the user's alone
            data_dir.chmod(0o700)
        database_url = env.get("TIPLINE_DATABASE_URL") or f"sqlite:///{data_dir / 'tipline.db'}"
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=env.get("TIPLINE_REDIS_URL") or None,
            keystore_url=env.get("TIPLINE_KEYSTORE_URL") or None,
            keystore_confirmed_volatile=env.get("TIPLINE_KEYSTORE_VOLATILE", "") == "confirmed",
            transit_epoch=_transit_epoch(env.get("TIPLINE_TRANSIT_EPOCH_MINUTES")),
            secret_key=_file_secret(data_dir, env, "TIPLINE_SECRET_KEY", "secret_key"),
            secrets=load_service_secrets(data_dir, env),
            zalo_app_id=env.get("ZALO_APP_ID", ""),
            zalo_oa_secret_key=env.get("ZALO_OA_SECRET_KEY", ""),
            zalo_app_secret=env.get("ZALO_APP_SECRET", ""),
            zalo_api_base=env.get("ZALO_API_BASE", ZALO_API_BASE).rstrip("/"),
            zalo_oauth_base=env.get("ZALO_OAUTH_BASE", ZALO_OAUTH_BASE).rstrip("/"),
            ward_boundaries=ward_boundaries_from(env.get("TIPLINE_WARD_BOUNDARIES")),
            simulator=env.get("TIPLINE_SIMULATOR", "") == "1",
            max_webhook_bytes=int(env.get("TIPLINE_MAX_WEBHOOK_BYTES", 64 * 1024)),
            followup_window=timedelta(
                minutes=float(env.get("TIPLINE_FOLLOWUP_WINDOW_MINUTES", 24 * 60))
            ),
            sweep_after=timedelta(seconds=float(env.get("TIPLINE_SWEEP_AFTER_SECONDS", 30))),
            session_idle_minutes=int(env.get("TIPLINE_SESSION_IDLE_MINUTES", 30)),
            behind_tls=env.get("TIPLINE_BEHIND_TLS", "") == "1",
            public_url=_public_url(env.get("TIPLINE_PUBLIC_URL", "")),
            pow_bits=int(env.get("TIPLINE_POW_BITS", 18)),
            media_hosts=_host_list(env.get("TIPLINE_MEDIA_HOSTS")) or ZALO_MEDIA_HOSTS,
            media_max_bytes=int(env.get("TIPLINE_MEDIA_MAX_BYTES", 50 * 1024 * 1024)),
            media_timeout_seconds=float(env.get("TIPLINE_MEDIA_TIMEOUT_SECONDS", 30)),
            retention_days=_retention_days(env.get("TIPLINE_RETENTION_DAYS")),
            retention_warn_days=int(env.get("TIPLINE_RETENTION_WARN_DAYS", 14)),
        )


# Settings that may come from a file named by ``<NAME>_FILE`` instead (docker secrets, systemd
# LoadCredential): the secrets, and the URLs that carry passwords.
FILE_SETTINGS = (
    "TIPLINE_SECRET_KEY",
    "TIPLINE_DATABASE_URL",
    "TIPLINE_REDIS_URL",
    "TIPLINE_KEYSTORE_URL",
    "TIPLINE_RELAY_KEY",
    "TIPLINE_RELAY_PUBLIC_KEY",
    "TIPLINE_ALIAS_KEY",
    "TIPLINE_AUDIT_SIGNING_KEY",
    "ZALO_APP_ID",
    "ZALO_OA_SECRET_KEY",
    "ZALO_APP_SECRET",
)


def with_file_settings(
    env: dict[str, str], names: tuple[str, ...] = FILE_SETTINGS
) -> dict[str, str]:
    """``env`` with each set ``<NAME>_FILE`` read into ``<NAME>`` (surrounding blanks stripped).

    A secret in a file stays out of the process environment (``/proc/PID/environ``,
    ``docker inspect``, ``systemctl show``). Both NAME and NAME_FILE set, an unreadable or an
    empty file: refused, naming the variable, rather than guessing or falling back to a
    generated secret that no other machine shares.
    """
    out = dict(env)
    for name in names:
        path = env.get(f"{name}_FILE")
        if not path:
            continue
        if env.get(name):
            raise ValueError(f"both {name} and {name}_FILE are set; keep one")
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{name}_FILE: cannot read {path}: {exc.strerror or exc}") from exc
        if not value:
            raise ValueError(f"{name}_FILE: {path} is empty")
        out[name] = value
    return out


def _retention_days(value: str | None) -> tuple[tuple[str, int], ...]:
    """``"resolved=365,spam=30"`` over the defaults; an unknown status or a bad number fails."""
    days = dict(DEFAULT_RETENTION_DAYS)
    for item in (value or "").split(","):
        if not item.strip():
            continue
        name, sep, number = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in days or int(number) < 1:
            raise ValueError(f"TIPLINE_RETENTION_DAYS: bad entry {item.strip()!r}")
        days[name] = int(number)
    return tuple(days.items())


def _transit_epoch(value: str | None) -> timedelta:
    """1 to 20 minutes: an epoch is retired after two lengths and its key expires by itself
    after 50 minutes (tipline.transit), which must never come while it is still current."""
    minutes = float(value) if value else 10.0
    if not 1 <= minutes <= 20:
        raise ValueError(f"TIPLINE_TRANSIT_EPOCH_MINUTES: {value!r} is not between 1 and 20")
    return timedelta(minutes=minutes)


def _public_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and not value.startswith(("https://", "http://")):
        raise ValueError(f"TIPLINE_PUBLIC_URL: not an http(s) URL: {value!r}")
    return value


def _host_list(value: str | None) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (value or "").split(",") if h.strip())


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def _generated(data_dir: Path, env: dict[str, str], variable: str, file: str, make: str) -> str:
    """The secret in ``<data_dir>/secrets/<file>``, created on first use, unless secrets must
    be given (``TIPLINE_REQUIRE_SECRETS=1``, production): two machines that each generated
    their own key would not understand each other's data."""
    if env.get("TIPLINE_REQUIRE_SECRETS", "") == "1":
        raise ValueError(f"{variable} (or {variable}_FILE) must be set: TIPLINE_REQUIRE_SECRETS=1")
    path = data_dir / "secrets" / file
    if not path.exists():
        try:
            _write_private(path, make)
        except FileExistsError:  # another process created it first
            pass
    return path.read_text().strip()


def _file_secret(data_dir: Path, env: dict[str, str], variable: str, name: str) -> str:
    return env.get(variable) or _generated(data_dir, env, variable, name, new_token(64))


def _key_pair(
    data_dir: Path, env: dict[str, str], name: str
) -> tuple[PublicKey, PrivateKey | None]:
    """A service key pair: the private half from its variable or file, or the public half
    alone (``TIPLINE_<NAME>_PUBLIC_KEY``) for processes that only seal to it."""
    variable = f"TIPLINE_{name.upper()}_KEY"
    public_variable = f"TIPLINE_{name.upper()}_PUBLIC_KEY"
    value, public_value = env.get(variable), env.get(public_variable)
    if value is None and public_value is not None:
        return PublicKey.from_bytes(base64.b64decode(public_value)), None
    if value is None:
        fresh = base64.b64encode(generate_keypair().to_bytes()).decode()
        value = _generated(data_dir, env, variable, f"{name}_key", fresh)
    private = PrivateKey.from_bytes(base64.b64decode(value))
    if public_value is not None and base64.b64decode(public_value) != private.public_key.to_bytes():
        raise ValueError(f"{public_variable} is not the public half of {variable}")
    return private.public_key, private


def _signing_secret(data_dir: Path, env: dict[str, str]) -> SigningKey:
    """``TIPLINE_AUDIT_SIGNING_KEY`` (base64 Ed25519 seed), or generated like the others."""
    value = env.get("TIPLINE_AUDIT_SIGNING_KEY")
    if value is None:
        fresh = base64.b64encode(generate_signing_key().to_bytes()).decode()
        value = _generated(data_dir, env, "TIPLINE_AUDIT_SIGNING_KEY", "audit_signing_key", fresh)
    return SigningKey.from_bytes(base64.b64decode(value))


def load_service_secrets(data_dir: Path, env: dict[str, str]) -> ServiceSecrets:
    alias = _file_secret(data_dir, env, "TIPLINE_ALIAS_KEY", "alias_key")
    for retired in ("TIPLINE_TRANSIT_KEY", "TIPLINE_TRANSIT_PUBLIC_KEY"):
        if env.get(retired) or env.get(f"{retired}_FILE"):
            raise ValueError(
                f"{retired} is no longer used: transit keys are made by the workers in short "
                "epochs and never stored (docs/threat-model.md); remove it and its file"
            )
    relay_public, relay_private = _key_pair(data_dir, env, "relay")
    return ServiceSecrets(
        relay_public=relay_public,
        alias_key=alias.encode(),
        audit_signing_key=_signing_secret(data_dir, env),
        relay_private=relay_private,
    )


def public_halves(secrets: ServiceSecrets) -> dict[str, str]:
    """The variables that give a web or intake process the public halves only."""
    return {
        "TIPLINE_RELAY_PUBLIC_KEY": base64.b64encode(secrets.relay_public.to_bytes()).decode(),
    }
