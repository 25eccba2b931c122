"""Signed, expiring tokens under the app's secret key: what a browser carries instead of a
server-side session.

A token is ``payload.issued.mac``: the payload (URL-safe base64 characters, possibly none),
when it was made (seconds since the epoch, hex) and an HMAC-SHA256 over the purpose, an
optional binding, the payload and the issue time. The binding (e.g. the value of a cookie
the same browser carries, or an account id) is checked but never part of the token, so a
token is good only beside it. The server keeps nothing: a token is checked with the key and
the clock alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

_PAYLOAD = re.compile(r"[A-Za-z0-9_-]*")
_ISSUED = re.compile(r"[0-9a-f]{1,12}")
MAX_TOKEN = 1024
CLOCK_SKEW = 60  # seconds a token may seem to come from the future (several machines' clocks)


class BadToken(Exception):
    """Malformed, forged, made for another purpose or binding, or expired."""


def _mac(key: bytes, purpose: str, bound_to: str, signed: str) -> str:
    message = b"\x00".join(
        (b"tipline/token", purpose.encode(), bound_to.encode(), signed.encode())
    )
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(
    key: bytes, purpose: str, payload: str = "", *, bound_to: str = "", issued: int | None = None
) -> str:
    """A token carrying ``payload`` for ``purpose``, good only beside ``bound_to``."""
    if not _PAYLOAD.fullmatch(payload):
        raise ValueError("a token's payload is URL-safe base64 characters only")
    signed = f"{payload}.{int(time.time()) if issued is None else issued:x}"
    return f"{signed}.{_mac(key, purpose, bound_to, signed)}"


def open_token(
    key: bytes,
    purpose: str,
    token: str,
    *,
    max_age: int,
    bound_to: str = "",
    now: int | None = None,
) -> str:
    """The payload of a token made by :func:`sign_token` for ``purpose`` and ``bound_to``, at
    most ``max_age`` seconds ago; :class:`BadToken` otherwise."""
    parts = token.split(".") if len(token) <= MAX_TOKEN else []
    if len(parts) != 3 or not _PAYLOAD.fullmatch(parts[0]) or not _ISSUED.fullmatch(parts[1]):
        raise BadToken("malformed token")
    payload, issued, mac = parts
    expected = _mac(key, purpose, bound_to, f"{payload}.{issued}")
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise BadToken("token not signed for this purpose and binding")
    age = (int(time.time()) if now is None else now) - int(issued, 16)
    if age > max_age or age < -CLOCK_SKEW:
        raise BadToken("token expired")
    return payload
