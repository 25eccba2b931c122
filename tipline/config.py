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
    CERTIFICATION_LABEL,
    STANDARD_COST,
    KdfCost,
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
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

# Hosts the media worker may download attachments from ("*." matches any subdomain): Zalo's
# CDNs, the one list (docs/zalo.md, "Evidence"). zdn.vn and zadn.vn serve OA media; dlfl.vn
# (files, which redirect to flchat.vn) and dlmd.me (videos) are Zalo's newer CDNs
# (research/zalo.md §8.2). TIPLINE_MEDIA_HOSTS replaces the list; in simulator mode the
# simulator is added.
ZALO_MEDIA_HOSTS = (
    "*.zdn.vn", "*.zadn.vn", "*.zalo.me", "*.zaloapp.com", "*.dlfl.vn", "*.flchat.vn",
    "*.dlmd.me",
)

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


class ConfigError(ValueError):
    """A setting is missing or wrong: the process does not start, and says which."""


@dataclass(frozen=True)
class Tier:
    """What one production tier reads: settings it must be given, and settings it may be."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.required + self.optional)


_STORES = ("TIPLINE_DATABASE_URL", "TIPLINE_REDIS_URL")
# The production tiers (``TIPLINE_TIER``; deploy/gunicorn.conf.py, the systemd units and the
# compose file set it). Each reads only the secrets and URLs it uses and ignores every other
# one it may have been given, so a leaked environment or a compromised process of one tier
# yields no more than that tier needs. The intake tier faces the internet: it verifies
# webhooks (the Zalo app id and OA secret key), computes the dedup key (the alias key), seals
# to public keys in the database and stores one row; no Flask secret, no audit signing key,
# no app secret, no relay key, and only the public half of the key-certification key
# (``TIPLINE_KEY_VERIFY_KEY``) to check the public keys it seals to. The staff and public tiers
# seal tokens to the relay key's public half (staff only); the staff tier and the workers hold
# the audit signer (checkpoints, key certificates); the workers alone open the key store and
# hold the relay key. Unset: a development process (tests, a checkout) that may fall back to a
# SQLite file, an embedded Redis and generated secrets; `tipline demo` always is one.
TIERS: dict[str, Tier] = {
    "intake": Tier(
        (
            *_STORES,
            "TIPLINE_ALIAS_KEY",
            "TIPLINE_KEY_VERIFY_KEY",
            "ZALO_APP_ID",
            "ZALO_OA_SECRET_KEY",
        )
    ),
    "staff": Tier(
        (
            *_STORES,
            "TIPLINE_SECRET_KEY",
            "TIPLINE_ALIAS_KEY",
            "TIPLINE_RELAY_PUBLIC_KEY",
            # Certifies the unit and officer keys the admin pages create (key_trust), and signs
            # the checkpoints the auditor makes; the internet-facing tiers hold its public half.
            "TIPLINE_AUDIT_SIGNING_KEY",
        ),
        ("ZALO_APP_ID", "ZALO_OA_SECRET_KEY", "ZALO_APP_SECRET"),
    ),
    "public": Tier(
        (*_STORES, "TIPLINE_SECRET_KEY", "TIPLINE_ALIAS_KEY", "TIPLINE_KEY_VERIFY_KEY"),
        ("ZALO_APP_ID", "ZALO_OA_SECRET_KEY"),
    ),
    "worker": Tier(
        (
            *_STORES,
            "TIPLINE_KEYSTORE_URL",
            "TIPLINE_RELAY_KEY",
            "TIPLINE_ALIAS_KEY",
            "TIPLINE_AUDIT_SIGNING_KEY",
            "ZALO_APP_ID",
        ),
        ("ZALO_APP_SECRET",),
    ),
    # `tipline metrics` (deploy/systemd/tipline-metrics.service): it counts rows, queues and
    # counters and opens nothing, so it is given the database and Redis and no secret (the
    # certification key's public half only, as every process checks the keys it reads).
    "metrics": Tier((*_STORES, "TIPLINE_KEY_VERIFY_KEY")),
    # deploy/tipline-admin: the command line on any machine, with what that machine holds.
    "admin": Tier(
        ("TIPLINE_DATABASE_URL", "TIPLINE_ALIAS_KEY"),
        (
            "TIPLINE_REDIS_URL",
            "TIPLINE_KEYSTORE_URL",
            "TIPLINE_SECRET_KEY",
            "TIPLINE_RELAY_KEY",
            "TIPLINE_RELAY_PUBLIC_KEY",
            "TIPLINE_AUDIT_SIGNING_KEY",
            "TIPLINE_KEY_VERIFY_KEY",
            "ZALO_APP_ID",
            "ZALO_OA_SECRET_KEY",
            "ZALO_APP_SECRET",
        ),
    ),
}


def tier_settings(environ: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The tier named by ``TIPLINE_TIER`` ("" for none) and the environment it may read.

    A tier's environment is ``environ`` less every setting (and ``<NAME>_FILE``) the tier does
    not read; its required ones must be set: a production tier neither generates a secret
    nor falls back to a SQLite file in its data dir or an embedded Redis.
    """
    tier = environ.get("TIPLINE_TIER", "").strip()
    if not tier:
        return "", with_file_settings(environ)
    spec = TIERS.get(tier)
    if spec is None:
        raise ConfigError(f"TIPLINE_TIER must be one of {', '.join(sorted(TIERS))}, not {tier!r}")
    ignored = set(FILE_SETTINGS) - spec.names
    kept = {k: v for k, v in environ.items() if k.removesuffix("_FILE") not in ignored}
    env = with_file_settings(kept, tuple(sorted(spec.names)))
    missing = [name for name in spec.required if not env.get(name)]
    if missing:
        raise ConfigError(
            f"TIPLINE_TIER={tier}: {', '.join(missing)} must be set (or <NAME>_FILE): a "
            "production tier does not fall back to a local SQLite file, an embedded Redis or "
            "a generated secret (docs/deploy.md)"
        )
    env["TIPLINE_REQUIRE_SECRETS"] = "1"
    return tier, env


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
    (``TIPLINE_RELAY_PUBLIC_KEY``): the web tiers seal tokens to it and open nothing. A
    production tier (``TIPLINE_TIER``) holds only the keys it uses (:data:`TIERS`);
    asking for one it was not given raises :class:`MissingSecret`.
    """

    relay_public_key: PublicKey | None
    # Keys the informants' aliases and the dedup keys (keys.keyed_digest); every tier but the
    # metrics one, which names nobody.
    alias: bytes | None = field(default=None, repr=False)
    # Signs audit checkpoints (tipline.audit). Auditors pin its public half's fingerprint, so
    # a checkpoint file kept offline proves what the chain's head was when it was exported.
    audit_signer: SigningKey | None = field(default=None, repr=False)
    relay_private: PrivateKey | None = field(default=None, repr=False)
    # Certifies stored public keys (keys.certify, tipline.models.key_trust): derived from the
    # audit signing seed, so the processes that sign checkpoints are the ones that certify.
    # A process holding ``key_verifier`` alone would only check (not configurable yet).
    key_certifier: SigningKey | None = field(default=None, repr=False)
    key_verifier: VerifyKey | None = None

    @property
    def certification_key(self) -> VerifyKey:
        if self.key_verifier is not None:
            return self.key_verifier
        if self.key_certifier is None:
            raise MissingSecret("no key-certification key: TIPLINE_AUDIT_SIGNING_KEY")
        return self.key_certifier.verify_key

    @property
    def alias_key(self) -> bytes:
        if self.alias is None:
            raise MissingSecret("TIPLINE_ALIAS_KEY: this tier is not given it")
        return self.alias

    @property
    def relay_key(self) -> PrivateKey:
        if self.relay_private is None:
            raise MissingSecret("TIPLINE_RELAY_KEY: this process holds the public half only")
        return self.relay_private

    @property
    def relay_public(self) -> PublicKey:
        if self.relay_public_key is None:
            raise MissingSecret("TIPLINE_RELAY_PUBLIC_KEY: this tier is not given the relay key")
        return self.relay_public_key

    @property
    def audit_signing_key(self) -> SigningKey:
        if self.audit_signer is None:
            raise MissingSecret("TIPLINE_AUDIT_SIGNING_KEY: this tier is not given it")
        return self.audit_signer


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
    # How many workers may expand stored events at once, each its share of the OAs' lanes
    # (tipline.intake.expansion). One: one worker expands while the others dispatch and send,
    # which measured best on one machine; more for workers on several machines.
    expanders: int = 1
    # The health check (tipline.health) calls the pipeline stuck when its oldest waiting
    # event or undispatched tip is older than this.
    stuck_after: timedelta = timedelta(seconds=300)
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
    # The cleaning sandbox (tipline.media.sandbox): CPU seconds and address space per process,
    # wall-clock seconds per file.
    media_cpu_seconds: int = 120
    media_memory_mb: int = 3072
    media_wall_seconds: float = 240.0
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
    # Audit checkpoints (tipline.audit.witness): the append-only witness file (None: off),
    # a syslog target ("/dev/log", "udp://host:514", "tcp://host:514"), and how often the
    # workers make one: every so many events or minutes, whichever comes first.
    audit_witness: Path | None = None
    audit_syslog: str | None = None
    checkpoint_events: int = 1000
    checkpoint_minutes: float = 10.0

    # The production tier this process is (TIERS), or "" for a development process.
    tier: str = ""
    # PostgreSQL roles `tipline db upgrade` (run as the owner) grants the tiers' privileges to
    # (tipline.migrate.grant_roles): the staff, public and worker tiers' role, the intake's.
    db_runtime_role: str | None = None
    db_intake_role: str | None = None
    db_metrics_role: str | None = None

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
        tier, env = tier_settings(dict(os.environ if environ is None else environ))
        wanted = TIERS[tier].names if tier else None
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
            tier=tier,
            db_runtime_role=env.get("TIPLINE_DB_RUNTIME_ROLE") or None,
            db_intake_role=env.get("TIPLINE_DB_INTAKE_ROLE") or None,
            db_metrics_role=env.get("TIPLINE_DB_METRICS_ROLE") or None,
            secret_key=(
                _file_secret(data_dir, env, "TIPLINE_SECRET_KEY", "secret_key")
                if wanted is None
                else env.get("TIPLINE_SECRET_KEY", "")
            ),
            secrets=load_service_secrets(data_dir, env, wanted),
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
            expanders=_expanders(env.get("TIPLINE_EXPANDERS")),
            stuck_after=timedelta(seconds=float(env.get("TIPLINE_STUCK_AFTER_SECONDS", 300))),
            session_idle_minutes=int(env.get("TIPLINE_SESSION_IDLE_MINUTES", 30)),
            behind_tls=env.get("TIPLINE_BEHIND_TLS", "") == "1",
            public_url=_public_url(env.get("TIPLINE_PUBLIC_URL", "")),
            pow_bits=int(env.get("TIPLINE_POW_BITS", 18)),
            media_hosts=_host_list(env.get("TIPLINE_MEDIA_HOSTS")) or ZALO_MEDIA_HOSTS,
            media_max_bytes=int(env.get("TIPLINE_MEDIA_MAX_BYTES", 50 * 1024 * 1024)),
            media_timeout_seconds=float(env.get("TIPLINE_MEDIA_TIMEOUT_SECONDS", 30)),
            media_cpu_seconds=int(env.get("TIPLINE_MEDIA_CPU_SECONDS", 120)),
            media_memory_mb=int(env.get("TIPLINE_MEDIA_MEMORY_MB", 3072)),
            media_wall_seconds=float(env.get("TIPLINE_MEDIA_WALL_SECONDS", 240)),
            retention_days=_retention_days(env.get("TIPLINE_RETENTION_DAYS")),
            retention_warn_days=int(env.get("TIPLINE_RETENTION_WARN_DAYS", 14)),
            audit_witness=_witness_path(data_dir, env.get("TIPLINE_AUDIT_WITNESS")),
            audit_syslog=env.get("TIPLINE_AUDIT_SYSLOG") or None,
            checkpoint_events=int(env.get("TIPLINE_AUDIT_CHECKPOINT_EVENTS", 1000)),
            checkpoint_minutes=float(env.get("TIPLINE_AUDIT_CHECKPOINT_MINUTES", 10)),
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


# Expansion lanes (tipline.intake.recording.lane_of): each OA's events are one lane.
EXPAND_LANES = 16


def _expanders(value: str | None) -> int:
    """1 (unset) to EXPAND_LANES: more expanders than lanes would find nothing to do."""
    if value is None or not value.strip():
        return 1
    if not value.strip().isdigit() or not 1 <= int(value) <= EXPAND_LANES:
        raise ValueError(f"TIPLINE_EXPANDERS must be a whole number from 1 to {EXPAND_LANES}")
    return int(value)


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


def _witness_path(data_dir: Path, value: str | None) -> Path | None:
    """The audit witness file: unset, ``audit-witness.jsonl`` in the data dir; "none": off."""
    if not value:
        return data_dir / "audit-witness.jsonl"
    if value.strip().lower() == "none":
        return None
    return Path(value)


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


def _verify_key(env: dict[str, str]) -> VerifyKey | None:
    """``TIPLINE_KEY_VERIFY_KEY``: the public half of the key-certification key (base64), for a
    tier that checks stored public keys but certifies none (`tipline keys public` prints it)."""
    value = (env.get("TIPLINE_KEY_VERIFY_KEY") or "").strip()
    if not value:
        return None
    # Shell tools that split on "=" (make-secrets.sh reads `tipline keys public`) may drop
    # base64's padding: put it back.
    return VerifyKey(base64.b64decode(value + "=" * (-len(value) % 4)))


def load_service_secrets(
    data_dir: Path, env: dict[str, str], wanted: frozenset[str] | None = None
) -> ServiceSecrets:
    """The service keys, all of them (``wanted`` None) or those a tier reads (TIERS)."""
    for retired in ("TIPLINE_TRANSIT_KEY", "TIPLINE_TRANSIT_PUBLIC_KEY"):
        if env.get(retired) or env.get(f"{retired}_FILE"):
            raise ValueError(
                f"{retired} is no longer used: transit keys are made by the workers in short "
                "epochs and never stored (docs/threat-model.md); remove it and its file"
            )
    if wanted is None:
        alias = _file_secret(data_dir, env, "TIPLINE_ALIAS_KEY", "alias_key")
        relay_public, relay_private = _key_pair(data_dir, env, "relay")
        audit_key = _signing_secret(data_dir, env)
        certifier = audit_key.derive(CERTIFICATION_LABEL)
        return ServiceSecrets(
            relay_public_key=relay_public,
            alias=alias.encode(),
            audit_signer=audit_key,
            relay_private=relay_private,
            key_certifier=certifier,
            key_verifier=certifier.verify_key,
        )
    # A tier's environment holds only the settings it reads, its required ones checked.
    given_alias = (
        _file_secret(data_dir, env, "TIPLINE_ALIAS_KEY", "alias_key")
        if "TIPLINE_ALIAS_KEY" in wanted
        else None
    )
    relay: tuple[PublicKey | None, PrivateKey | None] = (None, None)
    if env.get("TIPLINE_RELAY_KEY") or env.get("TIPLINE_RELAY_PUBLIC_KEY"):
        relay = _key_pair(data_dir, env, "relay")
    # The audit signer certifies stored public keys; a tier without it (intake, public)
    # checks them with the certification key's public half alone.
    given: SigningKey | None = (
        _signing_secret(data_dir, env) if env.get("TIPLINE_AUDIT_SIGNING_KEY") else None
    )
    certifies = given.derive(CERTIFICATION_LABEL) if given is not None else None
    checks = certifies.verify_key if certifies is not None else _verify_key(env)
    return ServiceSecrets(
        relay_public_key=relay[0],
        alias=given_alias.encode() if given_alias is not None else None,
        audit_signer=given,
        relay_private=relay[1],
        key_certifier=certifies,
        key_verifier=checks,
    )


def public_halves(secrets: ServiceSecrets) -> dict[str, str]:
    """The variables that give a web or intake process the public halves only."""
    return {
        "TIPLINE_RELAY_PUBLIC_KEY": base64.b64encode(secrets.relay_public.to_bytes()).decode(),
        "TIPLINE_KEY_VERIFY_KEY": base64.b64encode(secrets.certification_key.raw).decode(),
    }
