"""A small typed client for the three Zalo calls Tipline makes (research/zalo.md §2–3).

We write our own instead of using a third-party SDK because none both speaks OA API v3 and
lets the OAuth base be pointed at the simulator (zalo.md §5). The bases are configuration, so
the same code talks to Zalo in production and to ``/_sim`` in the demo and the tests.

Zalo answers errors with HTTP 200 and a negative ``error``; :class:`SendStatus` sorts those
into what the outbound worker must do. Transport failures and non-200 answers raise
:class:`ZaloUnavailableError`, which callers treat as "try again later".

Privacy: nothing here logs an access or refresh token, a Zalo user id or message text. Log
lines carry only the endpoint kind and Zalo's numeric error code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

import httpx

from keys import client_tls_context
from tipline.config import Config
from tipline.models.enums import SendProblem

log = logging.getLogger(__name__)

# Zalo refuses consultation texts longer than this (zalo.md §2.2). We refuse them before
# calling Zalo rather than split them: a split message whose second half fails would be
# half-delivered and, on retry, its first half sent twice. The reply form caps its input.
MAX_TEXT = 2000

TOKEN_INVALID_CODES = frozenset({-216, -220})
WINDOW_CLOSED_CODES = frozenset({-230, -232})
UNREACHABLE_CODES = frozenset({-213, -227, -244})
RATE_LIMITED_CODES = frozenset({-32})
# Refusals an admin must fix, not the informant (zalo.md §2.3, §8.2; U-SPEC §14).
UNFUNDED_CODES = frozenset({-320, -321})  # paid message: no Zalo Cloud Account, or no balance
OA_NOT_ELIGIBLE_CODES = frozenset({-221, -224})  # OA not verified / no service package
APP_NOT_PERMITTED_CODES = frozenset({-209, -212, -219, -223})  # the app lacks this API
API_RETIRED_CODES = frozenset({-240})  # MessageV2 shut down
APP_SECRET_PROOF_CODES = frozenset({-242})
_PROBLEMS: tuple[tuple[frozenset[int], SendProblem], ...] = (
    (UNFUNDED_CODES, SendProblem.UNFUNDED),
    (OA_NOT_ELIGIBLE_CODES, SendProblem.OA_NOT_ELIGIBLE),
    (APP_NOT_PERMITTED_CODES, SendProblem.APP_NOT_PERMITTED),
    (API_RETIRED_CODES, SendProblem.API_RETIRED),
    (APP_SECRET_PROOF_CODES, SendProblem.APP_PROOF),
    (WINDOW_CLOSED_CODES, SendProblem.WINDOW_CLOSED),
    (UNREACHABLE_CODES, SendProblem.UNREACHABLE),
    (TOKEN_INVALID_CODES, SendProblem.OA_ACCESS),
    (RATE_LIMITED_CODES, SendProblem.RATE_LIMITED),
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class SendStatus(StrEnum):
    OK = "ok"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - a status, not a secret. Refresh the OA's token once and try again  # nosec B105
    WINDOW_CLOSED = "window_closed"  # informant silent for 7 days: they must write again
    UNREACHABLE = "unreachable"  # not a follower, banned, or blocked this message type
    RATE_LIMITED = "rate_limited"  # back off and retry
    OTHER = "other"


def classify(error: int) -> SendStatus:
    """What Zalo's ``error`` code means for delivery."""
    if error == 0:
        return SendStatus.OK
    if error in TOKEN_INVALID_CODES:
        return SendStatus.TOKEN_INVALID
    if error in WINDOW_CLOSED_CODES:
        return SendStatus.WINDOW_CLOSED
    if error in UNREACHABLE_CODES:
        return SendStatus.UNREACHABLE
    if error in RATE_LIMITED_CODES:
        return SendStatus.RATE_LIMITED
    return SendStatus.OTHER


def problem_for(error: int) -> SendProblem | None:
    """The class of fix Zalo's ``error`` code calls for; None for success."""
    if error == 0:
        return None
    for codes, problem in _PROBLEMS:
        if error in codes:
            return problem
    return SendProblem.REJECTED


class ZaloError(Exception):
    """Base of this module's errors. Messages never contain tokens, ids or text."""


class ZaloUnavailableError(ZaloError):
    """Zalo could not be reached or gave no usable answer: transient, retry later."""


class TextTooLongError(ZaloError, ValueError):
    """The text exceeds :data:`MAX_TEXT`; Zalo would refuse it (see the note on MAX_TEXT)."""


class InvalidAddressError(ZaloError, ValueError):
    """The reply address is not a ``user`` or ``anonymous`` address we can send to."""


class RefreshFailedError(ZaloError):
    """Zalo refused the refresh token: an OA admin must re-consent (zalo.md §3)."""

    def __init__(self, error: int, message: str) -> None:
        super().__init__(f"Zalo refused the token refresh (error {error})")
        self.error = error
        self.message = message


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    error: int
    # Zalo's own description of the error (no user data in it), trimmed for storage.
    message: str
    message_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is SendStatus.OK

    @property
    def problem(self) -> SendProblem | None:
        return problem_for(self.error)

    @property
    def reason(self) -> str:
        """A short reason for ``Message.delivery_error``: the code and Zalo's words."""
        return f"zalo {self.error}: {self.message}"[:200]


@dataclass(frozen=True)
class TokenPair:
    """An OA's access and refresh tokens; repr hides both so they cannot leak into logs."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int  # seconds the access token lives (Zalo: 90000, i.e. 25 hours)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class ZaloClient:
    """Synchronous OA API and OAuth client. One instance may be reused for many calls."""

    def __init__(
        self,
        *,
        api_base: str,
        oauth_base: str,
        app_id: str,
        app_secret: str,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.oauth_base = oauth_base.rstrip("/")
        self.app_id = app_id
        self._app_secret = app_secret
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            verify=client_tls_context(),
        )

    @classmethod
    def from_config(cls, config: Config, *, transport: httpx.BaseTransport | None = None) -> Self:
        return cls(
            api_base=config.zalo_api_base,
            oauth_base=config.zalo_oauth_base,
            app_id=config.zalo_app_id,
            app_secret=config.zalo_app_secret,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, what: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.post(url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("zalo %s: transport error %s", what, type(exc).__name__)
            raise ZaloUnavailableError(f"zalo {what}: {type(exc).__name__}") from None
        if response.status_code != 200:
            log.warning("zalo %s: HTTP %d", what, response.status_code)
            raise ZaloUnavailableError(f"zalo {what}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            log.warning("zalo %s: answer is not a JSON object", what)
            raise ZaloUnavailableError(f"zalo {what}: unreadable answer")
        return body

    def send_text(self, access_token: str, address: dict[str, str], text: str) -> SendResult:
        """Send ``text`` to a reply address as a consultation (or anonymous-chat) message.

        ``address`` is the opened reply address: ``{"kind": "user", "user_id"}`` goes to
        ``/v3.0/oa/message/cs``; ``{"kind": "anonymous", "conversation_id", "anonymous_id"}``
        to ``/v2.0/oa/message``, the only endpoint that reaches web-chat visitors.
        """
        if not text:
            raise ValueError("empty text")
        if len(text) > MAX_TEXT:
            raise TextTooLongError(f"text of {len(text)} characters; Zalo accepts {MAX_TEXT}")
        kind = address.get("kind")
        if kind == "user" and address.get("user_id"):
            url = f"{self.api_base}/v3.0/oa/message/cs"
            recipient = {"user_id": address["user_id"]}
        elif kind == "anonymous" and address.get("conversation_id") and address.get("anonymous_id"):
            url = f"{self.api_base}/v2.0/oa/message"
            recipient = {
                "conversation_id": address["conversation_id"],
                "anonymous_id": address["anonymous_id"],
            }
        else:
            raise InvalidAddressError("reply address has no usable recipient")
        body = self._post(
            f"send ({kind})",
            url,
            headers={"access_token": access_token},
            json={"recipient": recipient, "message": {"text": text}},
        )
        error = _int(body.get("error"), -1)
        status = classify(error)
        data = body.get("data")
        message_id = None
        if status is SendStatus.OK and isinstance(data, dict):
            value = data.get("message_id")
            message_id = str(value) if value is not None else None
        raw_message = body.get("message")
        message = raw_message[:120] if isinstance(raw_message, str) else ""
        if status is SendStatus.OK:
            log.info("zalo send (%s): ok", kind)
        else:
            log.warning("zalo send (%s): error %d (%s)", kind, error, status)
        return SendResult(status=status, error=error, message=message, message_id=message_id)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for a new pair. The old refresh token dies (single-use).

        The caller must persist the returned pair before using it; see ``tipline.zalo.tokens``.
        """
        return self._token_request({"refresh_token": refresh_token, "grant_type": "refresh_token"})

    def exchange_code(self, code: str, code_verifier: str | None = None) -> TokenPair:
        """Exchange the one-time code from the OA admin's consent for a first token pair."""
        form = {"code": code, "grant_type": "authorization_code"}
        if code_verifier:
            form["code_verifier"] = code_verifier
        return self._token_request(form)

    def _token_request(self, form: dict[str, str]) -> TokenPair:
        body = self._post(
            "oauth",
            f"{self.oauth_base}/v4/oa/access_token",
            headers={"secret_key": self._app_secret},
            data={**form, "app_id": self.app_id},
        )
        access = body.get("access_token")
        refresh = body.get("refresh_token")
        if isinstance(access, str) and access and isinstance(refresh, str) and refresh:
            # expires_in is a string in Zalo's answer ("90000"); accept a number too.
            return TokenPair(access, refresh, _int(body.get("expires_in"), 0))
        error = _int(body.get("error"), -1)
        description = body.get("error_description") or body.get("message") or ""
        log.warning("zalo oauth: refused (error %d)", error)
        raise RefreshFailedError(error, str(description)[:120])
