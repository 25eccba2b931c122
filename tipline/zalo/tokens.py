"""Per-OA access and refresh tokens: sealed at rest, refreshed once, persisted before use.

Zalo's refresh tokens are single-use and rotating (zalo.md §3): a refresh kills the old one.
So a refresh is serialised per OA with a Redis lock (many workers, one refresh), and the new
pair is committed in its own transaction before the new access token is used — a crash after
the refresh but before the commit would otherwise leave the OA with a dead refresh token and
no way back short of an admin re-consenting.

Access tokens live 25 hours, and a refresh token unused for three months dies with the OA's
grant, so a quiet OA (no replies to send) would lose it: the workers refresh every OA whose
access token expires within :data:`SCHEDULED_WINDOW` (:func:`refresh_due_tokens`, every ten
minutes, tipline.jobs.worker), under the same lock, so two workers never spend one refresh token.

Tokens are sealed to the relay key: only the outbound worker, which holds its private half,
can open them. Nothing here logs a token.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import EnvelopeError, PrivateKey, PublicKey
from tipline.db import write_session
from tipline.models import OfficialAccount, utcnow
from tipline.models.sealed_fields import OA_TOKENS
from tipline.runtime import Runtime
from tipline.zalo.client import RefreshFailedError, TokenPair, ZaloClient, ZaloUnavailableError

__all__ = [
    "REFRESH_MARGIN",
    "REFRESH_TOKEN_LIFE",
    "REFUSED_RETRY_AFTER",
    "SCHEDULED_WINDOW",
    "TokenPair",
    "TokenUnavailableError",
    "access_token_for",
    "open_tokens",
    "refresh_due_tokens",
    "store_tokens",
]

log = logging.getLogger(__name__)

# Refresh this long before expiry, so a token never expires between check and send.
REFRESH_MARGIN = timedelta(hours=1)
# The scheduled pass refreshes access tokens that expire within this: a 25-hour token is
# refreshed about every 20 hours, and a pass that fails (Zalo down) has hours to try again.
SCHEDULED_WINDOW = timedelta(hours=5)
# A refresh token dies this long after it was issued unless it is used (zalo.md §3).
REFRESH_TOKEN_LIFE = timedelta(days=90)
# An OA whose refresh Zalo refused is left for a person, but tried again by the scheduled
# refresh this long after: Zalo answers a wrong app secret with a refusal too, and a refused
# refresh token is not spent, so once the secret is fixed the OAs come back by themselves.
REFUSED_RETRY_AFTER = timedelta(hours=24)
LOCK_TIMEOUT = 60  # seconds a crashed holder keeps the lock
LOCK_WAIT = 30  # seconds a worker waits for another's refresh
RECONSENT = "an OA admin must re-consent"
CONNECT_HINT = "connect it on /admin/zalo/ or with tipline zalo set-tokens"


class TokenUnavailableError(Exception):
    """No usable token for the OA without a person: not connected, or refresh refused."""


def lock_name(oa_id: str) -> str:
    return f"tipline:oa-token-refresh:{oa_id}"


def store_tokens(
    session: Session,
    oa: OfficialAccount,
    pair: TokenPair,
    relay_public: PublicKey,
    *,
    now: datetime | None = None,
) -> None:
    """Seal ``pair`` into ``oa`` and clear any token error; the caller commits.

    Used after a refresh, after an admin's consent, and by ``tipline demo`` for its first pair.
    """
    plaintext = json.dumps(
        {"access_token": pair.access_token, "refresh_token": pair.refresh_token}
    ).encode()
    now = now or utcnow()
    oa.sealed_tokens = OA_TOKENS.seal(relay_public, plaintext, oa_id=oa.oa_id)
    oa.access_expires_at = now + timedelta(seconds=max(pair.expires_in, 0))
    oa.tokens_updated_at = now
    oa.token_generation = (oa.token_generation or 0) + 1
    oa.token_error = None
    oa.token_error_at = None


def open_tokens(oa: OfficialAccount, relay_key: PrivateKey) -> TokenPair | None:
    """The OA's stored pair, or None when it has none. ``expires_in`` is what remains."""
    if oa.sealed_tokens is None:
        return None
    data = json.loads(OA_TOKENS.open(relay_key, oa.sealed_tokens, oa_id=oa.oa_id))
    remaining = 0
    if oa.access_expires_at is not None:
        remaining = max(int((oa.access_expires_at - utcnow()).total_seconds()), 0)
    return TokenPair(str(data["access_token"]), str(data["refresh_token"]), remaining)


def _load(session: Session, oa_id: str) -> OfficialAccount:
    oa = session.scalars(
        select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
    ).one_or_none()
    if oa is None:
        raise TokenUnavailableError(f"OA {oa_id} is not registered")
    return oa


def _fresh(oa: OfficialAccount, now: datetime) -> bool:
    return oa.access_expires_at is not None and oa.access_expires_at > now + REFRESH_MARGIN


def _usable(oa: OfficialAccount, relay_key: PrivateKey) -> TokenPair:
    try:
        pair = open_tokens(oa, relay_key)
    except (EnvelopeError, ValueError, KeyError) as exc:
        raise TokenUnavailableError(f"OA {oa.oa_id}: stored tokens do not open") from exc
    if pair is None:
        raise TokenUnavailableError(
            f"OA {oa.oa_id} has no tokens: never connected to Zalo ({CONNECT_HINT})"
        )
    return pair


def access_token_for(
    runtime: Runtime,
    oa_id: str,
    client: ZaloClient,
    force_refresh: bool = False,
    *,
    rejected_token: str | None = None,
) -> str:
    """A valid access token for ``oa_id``, refreshing it when due or when forced.

    ``force_refresh`` is for a token Zalo just rejected (-216/-220). Pass that token as
    ``rejected_token`` so that, when another worker has already replaced it while this one
    waited for the lock, the replacement is used instead of burning another refresh.

    Raises :class:`TokenUnavailableError` when a person must act (recorded in ``oa.token_error``),
    and ``ZaloUnavailableError`` or ``LockError`` when trying again later may work.
    """
    relay_key = runtime.config.secrets.relay_key
    with runtime.sessions() as session:
        oa = _load(session, oa_id)
        pair = _usable(oa, relay_key)
        if not force_refresh and _fresh(oa, utcnow()):
            return pair.access_token

    lock = runtime.redis.lock(lock_name(oa_id), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        raise LockError(f"OA {oa_id}: another worker is still refreshing the token")
    try:
        with runtime.sessions() as session:
            oa = _load(session, oa_id)
            current = _usable(oa, relay_key)
            replaced = rejected_token is not None and current.access_token != rejected_token
            if _fresh(oa, utcnow()) and (not force_refresh or replaced):
                return current.access_token  # another worker refreshed while we waited
            if oa.token_error is not None:
                raise TokenUnavailableError(f"OA {oa_id}: {oa.token_error}")
        return _refresh_and_store(runtime, oa_id, client, current).access_token
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("OA %s: token lock expired before release", oa_id)


def _refresh_and_store(
    runtime: Runtime, oa_id: str, client: ZaloClient, current: TokenPair
) -> TokenPair:
    """Spend ``current``'s refresh token and commit the new pair; call under the OA's lock.

    No database transaction is held across the HTTP call; the writes below each take SQLite's
    write lock up front, so they cannot fail on a lock upgrade.
    """
    try:
        new_pair = client.refresh(current.refresh_token)
    except RefreshFailedError as exc:
        reason = f"token refresh refused (zalo {exc.error}): {RECONSENT}"[:200]
        with write_session(runtime.sessions) as session:
            oa = _load(session, oa_id)
            oa.token_error = reason
            oa.last_error = reason
            oa.token_error_at = oa.last_error_at = utcnow()
        log.error("OA %s: token refresh refused (error %d): %s", oa_id, exc.error, RECONSENT)
        raise TokenUnavailableError(f"OA {oa_id}: {RECONSENT}") from exc
    # Persist before use: the old refresh token is already dead at Zalo.
    with write_session(runtime.sessions) as session:
        oa = _load(session, oa_id)
        store_tokens(session, oa, new_pair, runtime.config.secrets.relay_public)
        generation = oa.token_generation
    log.info("OA %s: tokens refreshed (generation %d)", oa_id, generation)
    return new_pair


def _due(oa: OfficialAccount, now: datetime, window: timedelta) -> bool:
    """Connected and its access token expires within ``window``; refused a day ago or more."""
    if oa.sealed_tokens is None:
        return False
    if oa.token_error is not None:
        return oa.token_error_at is None or oa.token_error_at <= now - REFUSED_RETRY_AFTER
    return oa.access_expires_at is None or oa.access_expires_at <= now + window


def refresh_if_due(
    runtime: Runtime, oa_id: str, client: ZaloClient, window: timedelta = SCHEDULED_WINDOW
) -> bool:
    """Refresh ``oa_id``'s tokens if they are still due once its lock is held; whether it did.

    The lock is not waited for: its holder is refreshing this OA right now. Under the lock the
    row is read again, so a worker whose list of due OAs predates another's refresh skips it
    instead of spending the new refresh token.
    """
    relay_key = runtime.config.secrets.relay_key
    lock = runtime.redis.lock(lock_name(oa_id), timeout=LOCK_TIMEOUT, blocking=False)
    if not lock.acquire():
        return False
    try:
        with runtime.sessions() as session:
            oa = _load(session, oa_id)
            if not _due(oa, utcnow(), window):
                return False
            current = _usable(oa, relay_key)
        _refresh_and_store(runtime, oa_id, client, current)
        return True
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("OA %s: token lock expired before release", oa_id)


def refresh_due_tokens(
    runtime: Runtime, client: ZaloClient, window: timedelta = SCHEDULED_WINDOW
) -> list[str]:
    """The scheduled pass: refresh every OA whose access token expires within ``window``.

    Soonest expiry first. An OA whose refresh Zalo refuses is marked for re-consent
    (``token_error``) and tried again only a day later (:data:`REFUSED_RETRY_AFTER`); Zalo
    unreachable ends the pass (the next one tries again, hours before any token expires).
    Returns the OA ids refreshed.
    """
    now = utcnow()
    with runtime.sessions() as session:
        due = [
            oa.oa_id
            for oa in session.scalars(
                select(OfficialAccount).order_by(OfficialAccount.access_expires_at)
            )
            if _due(oa, now, window)
        ]
    refreshed: list[str] = []
    for oa_id in due:
        try:
            if refresh_if_due(runtime, oa_id, client, window):
                refreshed.append(oa_id)
        except TokenUnavailableError as exc:  # recorded on the OA; an admin must act
            log.warning("%s", exc)
        except ZaloUnavailableError as exc:
            log.warning("scheduled token refresh stopped: %s", exc)
            break
    if refreshed:
        log.info("scheduled token refresh: %d OA(s) refreshed", len(refreshed))
    return refreshed
