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

ZALO_API_BASE = "https://openapi.zalo.me"
ZALO_OAUTH_BASE = "https://oauth.zaloapp.com"

# Used only by `tipline demo` when ZALO_* are unset; Zalo never issued these.
DEMO_ZALO_APP_ID = "3608465248940903967"
DEMO_ZALO_OA_SECRET_KEY = "DEMO_OA_SECRET_KEY_NOT_FOR_PRODUCTION"  # noqa: S105  # nosec B105
DEMO_ZALO_APP_SECRET = "DEMO_APP_SECRET_NOT_FOR_PRODUCTION"  # noqa: S105  # nosec B105

# Hosts the media worker may download attachments from ("*." matches any subdomain); Zalo's
# CDNs. TIPLINE_MEDIA_HOSTS replaces the list; in simulator mode the simulator is added.
ZALO_MEDIA_HOSTS = ("*.zdn.vn", "*.zadn.vn", "*.zalo.me", "*.zaloapp.com")

# Retention (tipline.retention): days a closed tip is kept after closing, per final status,
# before it is crypto-shredded. TIPLINE_RETENTION_DAYS overrides ("resolved=365,spam=30").
DEFAULT_RETENTION_DAYS: tuple[tuple[str, int], ...] = (
    ("resolved", 365),
    ("unfounded", 180),
    ("duplicate", 90),
    ("spam", 30),
)


@dataclass(frozen=True)
class ServiceSecrets:
    """The intake tier's own keys (DESIGN.md: transit, relay, alias) and the audit signer."""

    transit_key: PrivateKey
    relay_key: PrivateKey
    alias_key: bytes
    # Signs audit checkpoints (tipline.audit). Auditors pin its public half's fingerprint, so
    # a checkpoint file kept offline proves what the chain's head was when it was exported.
    audit_signing_key: SigningKey

    @property
    def transit_public(self) -> PublicKey:
        return self.transit_key.public_key

    @property
    def relay_public(self) -> PublicKey:
        return self.relay_key.public_key


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
    ward_boundaries: Path | None = None
    simulator: bool = False
    max_webhook_bytes: int = 64 * 1024
    followup_window: timedelta = timedelta(hours=24)
    reply_window: timedelta = timedelta(days=7)
    sweep_after: timedelta = timedelta(seconds=30)
    kdf_cost: KdfCost = STANDARD_COST
    testing: bool = False
    # Staff sessions end after this long without a request; their unlocked key goes with them.
    session_idle_minutes: int = 30
    # Served over HTTPS (usually by a reverse proxy): secure cookies and HSTS.
    behind_tls: bool = False
    # Failed logins before an account is locked, and for how long.
    max_failed_logins: int = 5
    lockout_minutes: int = 15
    # The web form's proof of work: leading zero bits of SHA-256 (18: about a second in a
    # phone's browser; tests use fewer).
    pow_bits: int = 18
    # The media worker: allowed hosts, a size cap and a timeout for each download.
    media_hosts: tuple[str, ...] = ZALO_MEDIA_HOSTS
    media_max_bytes: int = 50 * 1024 * 1024
    media_timeout_seconds: float = 30.0
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
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = env.get("TIPLINE_DATABASE_URL") or f"sqlite:///{data_dir / 'tipline.db'}"
        boundaries = env.get("TIPLINE_WARD_BOUNDARIES")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=env.get("TIPLINE_REDIS_URL") or None,
            secret_key=env.get("TIPLINE_SECRET_KEY") or _file_secret(data_dir, "secret_key"),
            secrets=load_service_secrets(data_dir, env),
            zalo_app_id=env.get("ZALO_APP_ID", ""),
            zalo_oa_secret_key=env.get("ZALO_OA_SECRET_KEY", ""),
            zalo_app_secret=env.get("ZALO_APP_SECRET", ""),
            zalo_api_base=env.get("ZALO_API_BASE", ZALO_API_BASE).rstrip("/"),
            zalo_oauth_base=env.get("ZALO_OAUTH_BASE", ZALO_OAUTH_BASE).rstrip("/"),
            ward_boundaries=Path(boundaries) if boundaries else None,
            simulator=env.get("TIPLINE_SIMULATOR", "") == "1",
            max_webhook_bytes=int(env.get("TIPLINE_MAX_WEBHOOK_BYTES", 64 * 1024)),
            followup_window=timedelta(
                minutes=float(env.get("TIPLINE_FOLLOWUP_WINDOW_MINUTES", 24 * 60))
            ),
            sweep_after=timedelta(seconds=float(env.get("TIPLINE_SWEEP_AFTER_SECONDS", 30))),
            session_idle_minutes=int(env.get("TIPLINE_SESSION_IDLE_MINUTES", 30)),
            behind_tls=env.get("TIPLINE_BEHIND_TLS", "") == "1",
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
    "TIPLINE_TRANSIT_KEY",
    "TIPLINE_RELAY_KEY",
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


def _host_list(value: str | None) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in (value or "").split(",") if h.strip())


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)


def _file_secret(data_dir: Path, name: str) -> str:
    path = data_dir / "secrets" / name
    if not path.exists():
        try:
            _write_private(path, new_token(64))
        except FileExistsError:  # another process created it first
            pass
    return path.read_text().strip()


def _key_secret(data_dir: Path, env: dict[str, str], name: str) -> PrivateKey:
    value = env.get(f"TIPLINE_{name.upper()}_KEY")
    if value is None:
        path = data_dir / "secrets" / f"{name}_key"
        if not path.exists():
            try:
                _write_private(path, base64.b64encode(generate_keypair().to_bytes()).decode())
            except FileExistsError:
                pass
        value = path.read_text().strip()
    return PrivateKey.from_bytes(base64.b64decode(value))


def _signing_secret(data_dir: Path, env: dict[str, str]) -> SigningKey:
    """``TIPLINE_AUDIT_SIGNING_KEY`` (base64 Ed25519 seed), or generated like the others."""
    value = env.get("TIPLINE_AUDIT_SIGNING_KEY")
    if value is None:
        path = data_dir / "secrets" / "audit_signing_key"
        if not path.exists():
            try:
                _write_private(path, base64.b64encode(generate_signing_key().to_bytes()).decode())
            except FileExistsError:
                pass
        value = path.read_text().strip()
    return SigningKey.from_bytes(base64.b64decode(value))


def load_service_secrets(data_dir: Path, env: dict[str, str]) -> ServiceSecrets:
    alias = env.get("TIPLINE_ALIAS_KEY") or _file_secret(data_dir, "alias_key")
    return ServiceSecrets(
        transit_key=_key_secret(data_dir, env, "transit"),
        relay_key=_key_secret(data_dir, env, "relay"),
        alias_key=alias.encode(),
        audit_signing_key=_signing_secret(data_dir, env),
    )
