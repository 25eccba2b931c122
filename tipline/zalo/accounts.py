"""Connecting OAs to Zalo and keeping them connected: consent, tokens given by hand, status.

Three ways give an OA its tokens, all sealed to the relay key's public half (the web and CLI
processes may hold only that half: they seal, they cannot open):

- **Consent** (OAuth v4 with PKCE, research/zalo.md §3 and §8.2). An admin starts it from
  /admin (:func:`start_consent`): a random ``state`` and PKCE verifier are kept in Redis for
  :data:`CONSENT_TTL`, bound to the admin, to their session and to the OA asked for, and the
  admin's browser goes to Zalo's consent page. Zalo sends the browser back to the callback
  with ``code``, ``oa_id`` and ``state``; :func:`finish_consent` takes the state once (a
  replay finds nothing), checks the binding, exchanges the code with the verifier and the app
  secret, and stores the pair.
- **By hand** (:func:`set_tokens`): a pair from the API Explorer of Zalo's console.
- **The refresh** (tipline.zalo.tokens), which keeps a pair alive.

:func:`oa_statuses` says where each OA stands (``tipline zalo oa-status``, the admin's page).
Nothing here logs or returns a token; audit events name the OA and how it was connected.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from keys import constant_time_equal, keyed_digest, new_pkce_verifier, new_token, pkce_challenge
from tipline import audit
from tipline.db import write_session
from tipline.models import Officer, OfficialAccount, Outcome, utcnow
from tipline.models.official_account import OA_TOKEN_FACTS
from tipline.runtime import Runtime
from tipline.zalo.client import RefreshFailedError, TokenPair, ZaloClient, ZaloUnavailableError
from tipline.zalo.tokens import REFRESH_MARGIN, REFRESH_TOKEN_LIFE, store_tokens

log = logging.getLogger(__name__)

CONSENT_TTL = 600  # seconds: Zalo's authorization codes live 10 minutes too
CONSENT_KEY = "tipline:zalo-consent:{}"  # a keyed digest of the state, never the state
# The grant is shown as ending when its refresh token has less than this left.
GRANT_WARNING = timedelta(days=14)
# `tipline zalo set-tokens`: the API Explorer does not say when its access token was made, so
# it is taken to have this left, inside the scheduled refresh's window: the next round (within
# ten minutes) refreshes it, which also proves the refresh token works.
HAND_TOKEN_LIFE = timedelta(hours=4)
MAX_TOKEN_LENGTH = 2048


class TokenState(StrEnum):
    """Where an OA's tokens stand (CONTRACT.md: ``tipline zalo oa-status``)."""

    OK = "ok"
    MISSING = "missing"  # never connected: nothing can be sent through the OA
    EXPIRING = "expiring"  # not refreshed in time: the grant ends unless a worker refreshes it
    ERROR = "error"  # Zalo refused the refresh token: an OA admin must consent again


@dataclass(frozen=True)
class TokenFacts:
    """What an OA's token state is computed from: whether it has tokens and an error, and their
    times; never the tokens (the metrics role reads these alone, through OA_TOKEN_FACTS)."""

    has_tokens: bool
    has_error: bool
    access_expires_at: datetime | None
    tokens_updated_at: datetime | None

    @classmethod
    def of(cls, oa: OfficialAccount) -> TokenFacts:
        return cls(
            has_tokens=oa.sealed_tokens is not None,
            has_error=oa.token_error is not None,
            access_expires_at=oa.access_expires_at,
            tokens_updated_at=oa.tokens_updated_at,
        )


def token_state(facts: TokenFacts, now: datetime) -> TokenState:
    if not facts.has_tokens:
        return TokenState.MISSING
    if facts.has_error:
        return TokenState.ERROR
    if facts.access_expires_at is None or facts.access_expires_at <= now + REFRESH_MARGIN:
        return TokenState.EXPIRING
    ends = grant_ends_at(facts)
    if ends is not None and ends <= now + GRANT_WARNING:
        return TokenState.EXPIRING
    return TokenState.OK


def grant_ends_at(facts: TokenFacts) -> datetime | None:
    """When the stored refresh token dies unless it is used (None: no tokens)."""
    if not facts.has_tokens or facts.tokens_updated_at is None:
        return None
    return facts.tokens_updated_at + REFRESH_TOKEN_LIFE


def token_states(connection: Connection, now: datetime | None = None) -> dict[str, TokenState]:
    """Each OA's token state by OA id, read from OA_TOKEN_FACTS alone (``tipline metrics``)."""
    now = now or utcnow()
    rows = connection.execute(select(OA_TOKEN_FACTS).order_by(OA_TOKEN_FACTS.c.oa_id))
    return {
        row.oa_id: token_state(
            TokenFacts(
                has_tokens=bool(row.has_tokens),
                has_error=bool(row.has_error),
                access_expires_at=row.access_expires_at,
                tokens_updated_at=row.tokens_updated_at,
            ),
            now,
        )
        for row in rows
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@dataclass(frozen=True)
class OaStatus:
    oa_id: str
    unit_code: str
    unit_name: str
    unit_public_id: str
    token_state: TokenState
    expires_at: datetime | None  # the access token's
    grant_ends_at: datetime | None  # the refresh token's, unless used
    last_webhook_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The object of ``tipline zalo oa-status --json`` (CONTRACT.md): these keys only."""
        return {
            "oa_id": self.oa_id,
            "unit": self.unit_code,
            "token_state": str(self.token_state),
            "expires_at": _iso(self.expires_at),
            "last_webhook_at": _iso(self.last_webhook_at),
            "last_error": self.last_error,
        }


def oa_statuses(session: Session, now: datetime | None = None) -> list[OaStatus]:
    """Every OA, by unit code then OA id."""
    now = now or utcnow()
    accounts = session.scalars(select(OfficialAccount)).all()
    found = [
        OaStatus(
            oa_id=oa.oa_id,
            unit_code=oa.unit.code,
            unit_name=oa.unit.name,
            unit_public_id=oa.unit.public_id,
            token_state=token_state(facts, now),
            expires_at=oa.access_expires_at if facts.has_tokens else None,
            grant_ends_at=grant_ends_at(facts),
            last_webhook_at=oa.last_webhook_at,
            last_error=oa.last_error,
            last_error_at=oa.last_error_at,
        )
        for oa in accounts
        for facts in (TokenFacts.of(oa),)
    ]
    return sorted(found, key=lambda status: (status.unit_code, status.oa_id))


class ConnectError(ValueError):
    """Tokens that cannot be stored for this OA; the message says why (no token in it)."""


def find_oa(session: Session, oa_id: str) -> OfficialAccount | None:
    return session.scalars(
        select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
    ).one_or_none()


def _connected(
    session: Session,
    oa: OfficialAccount,
    pair: TokenPair,
    runtime: Runtime,
    *,
    via: str,
    actor: Officer | None,
    client_address: str | None = None,
) -> None:
    """Store a new pair (a fresh start: earlier errors cleared) and audit it."""
    store_tokens(session, oa, pair, runtime.config.secrets.relay_public)
    oa.last_error = None
    oa.last_error_at = None
    audit.record(
        session,
        action=audit.actions.OA_CONNECT,
        actor=actor,
        object_id=oa.oa_id,
        unit=oa.unit,
        client_address=client_address,
        detail={"via": via},
    )


def read_token_pair(text: str) -> TokenPair:
    """An access and a refresh token from two lines (``tipline zalo set-tokens``' stdin)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise ConnectError("expected two lines: the access token, then the refresh token")
    for line in lines:
        if len(line) > MAX_TOKEN_LENGTH or not line.isprintable() or " " in line:
            raise ConnectError("a token is one word of printable characters")
    if lines[0] == lines[1]:
        raise ConnectError("the access token and the refresh token are the same")
    return TokenPair(lines[0], lines[1], int(HAND_TOKEN_LIFE.total_seconds()))


def set_tokens(runtime: Runtime, oa_id: str, pair: TokenPair) -> None:
    """Store a pair given by hand (the API Explorer path), audited as the system."""
    with write_session(runtime.sessions) as session:
        oa = find_oa(session, oa_id)
        if oa is None:
            raise ConnectError(
                f"OA {oa_id} is attached to no unit: `tipline units set-oa CODE {oa_id}` first"
            )
        _connected(session, oa, pair, runtime, via="set_tokens", actor=None)
    log.info("OA %s: tokens set by hand", oa_id)


# --- consent ---------------------------------------------------------------------------------


class ConsentRefusal(StrEnum):
    """Why a consent's callback was refused (fixed words: audit detail, the page's message)."""

    NOT_CONFIGURED = "not_configured"  # ZALO_APP_ID or ZALO_APP_SECRET unset
    NO_CODE = "no_code"  # Zalo sent no code back: consent not given
    STATE = "state"  # unknown, expired (10 minutes), already used, or another session's
    WRONG_OA = "wrong_oa"  # Zalo's OA is not the one asked for
    UNKNOWN_OA = "unknown_oa"  # the OA was detached meanwhile
    REFUSED = "refused"  # Zalo refused the code
    UNAVAILABLE = "unavailable"  # Zalo could not be reached


class ConsentError(Exception):
    def __init__(self, reason: ConsentRefusal, zalo_error: int | None = None) -> None:
        super().__init__(str(reason))
        self.reason = reason
        self.zalo_error = zalo_error


@dataclass(frozen=True)
class ConsentResult:
    oa_id: str
    unit_code: str
    unit_name: str
    expires_at: datetime | None


def configured(runtime: Runtime) -> bool:
    """Whether this process can run a consent: the app id and the app secret are set."""
    return bool(runtime.config.zalo_app_id and runtime.config.zalo_app_secret)


def _consent_key(runtime: Runtime, state: str) -> str:
    return CONSENT_KEY.format(keyed_digest(runtime.config.secrets.alias_key, "consent", state))


def start_consent(
    runtime: Runtime, *, oa_id: str, officer_id: str, binding: str, redirect_uri: str
) -> str:
    """Keep a new state and PKCE verifier for this admin, session and OA; the URL of Zalo's
    consent page (``{ZALO_OAUTH_BASE}/v4/oa/permission?…``) to send the browser to."""
    if not configured(runtime):
        raise ConsentError(ConsentRefusal.NOT_CONFIGURED)
    state = new_token(32)  # 160 random bits
    verifier = new_pkce_verifier()
    record = {
        "oa_id": oa_id,
        "officer": officer_id,
        "binding": binding,
        "verifier": verifier,
    }
    runtime.redis.set(_consent_key(runtime, state), json.dumps(record), ex=CONSENT_TTL)
    query = urlencode(
        {
            "app_id": runtime.config.zalo_app_id,
            "redirect_uri": redirect_uri,
            "code_challenge": pkce_challenge(verifier),
            "state": state,
        }
    )
    return f"{runtime.config.zalo_oauth_base}/v4/oa/permission?{query}"


def _take_state(runtime: Runtime, state: str) -> dict[str, str] | None:
    """The consent kept under ``state``, deleted in the same step: a state is good once."""
    if not state or len(state) > 64:
        return None
    key = _consent_key(runtime, state)
    pipe = runtime.redis.pipeline(transaction=True)
    pipe.get(key)
    pipe.delete(key)
    raw, _deleted = pipe.execute()
    if raw is None:
        return None
    record = json.loads(raw)
    return record if isinstance(record, dict) else None


def finish_consent(
    runtime: Runtime,
    client: ZaloClient,
    *,
    code: str,
    oa_id: str,
    state: str,
    officer_id: str,
    binding: str,
    client_address: str | None,
) -> ConsentResult:
    """The callback: check the state, exchange the code, store the pair; audited either way.

    Raises :class:`ConsentError` naming why nothing was stored.
    """
    try:
        result = _finish(runtime, client, code, oa_id, state, officer_id, binding, client_address)
    except ConsentError as refused:
        _audit_refusal(runtime, refused, oa_id, officer_id, client_address)
        raise
    log.info("OA %s: connected by consent", result.oa_id)
    return result


def _finish(
    runtime: Runtime,
    client: ZaloClient,
    code: str,
    oa_id: str,
    state: str,
    officer_id: str,
    binding: str,
    client_address: str | None,
) -> ConsentResult:
    record = _take_state(runtime, state)  # taken before anything else: a replay finds nothing
    if record is None or record.get("officer") != officer_id:
        raise ConsentError(ConsentRefusal.STATE)
    if not constant_time_equal(str(record.get("binding", "")), binding):
        raise ConsentError(ConsentRefusal.STATE)
    if not code:
        raise ConsentError(ConsentRefusal.NO_CODE)
    if oa_id != record.get("oa_id"):
        raise ConsentError(ConsentRefusal.WRONG_OA)
    if not configured(runtime):
        raise ConsentError(ConsentRefusal.NOT_CONFIGURED)
    try:
        pair = client.exchange_code(code, str(record["verifier"]))
    except RefreshFailedError as exc:
        raise ConsentError(ConsentRefusal.REFUSED, exc.error) from exc
    except ZaloUnavailableError as exc:
        raise ConsentError(ConsentRefusal.UNAVAILABLE) from exc
    with write_session(runtime.sessions) as session:
        oa = find_oa(session, oa_id)
        if oa is None:
            raise ConsentError(ConsentRefusal.UNKNOWN_OA)
        actor = session.scalars(select(Officer).where(Officer.public_id == officer_id)).one()
        _connected(
            session, oa, pair, runtime, via="consent", actor=actor, client_address=client_address
        )
        return ConsentResult(oa.oa_id, oa.unit.code, oa.unit.name, oa.access_expires_at)


def _audit_refusal(
    runtime: Runtime,
    refused: ConsentError,
    oa_id: str,
    officer_id: str,
    client_address: str | None,
) -> None:
    """A refused callback is audited too, naming the OA only when it is one we know."""
    outcome = (
        Outcome.FAILED
        if refused.reason in (ConsentRefusal.REFUSED, ConsentRefusal.UNAVAILABLE)
        else Outcome.DENIED
    )
    detail = {"via": "consent", "reason": str(refused.reason)}
    if refused.zalo_error is not None:
        detail["zalo_error"] = str(refused.zalo_error)
    with write_session(runtime.sessions) as session:
        actor = session.scalars(select(Officer).where(Officer.public_id == officer_id)).one()
        oa = find_oa(session, oa_id) if oa_id.isdigit() and len(oa_id) <= 32 else None
        audit.record(
            session,
            action=audit.actions.OA_CONNECT,
            actor=actor,
            object_id=oa.oa_id if oa is not None else None,
            unit=oa.unit if oa is not None else None,
            outcome=outcome,
            client_address=client_address,
            detail=detail,
        )
    log.warning("OA consent refused: %s", refused.reason)
