"""Verifying Zalo's ``X-ZEvent-Signature`` (research/zalo.md §1.2)."""

from __future__ import annotations

from keys import constant_time_equal, webhook_mac


def signature_value(header: str | None) -> str | None:
    """The hex digest from a header value, without its optional ``mac=`` prefix."""
    if not header:
        return None
    value = header.strip()
    if value.lower().startswith("mac="):
        value = value[4:].strip()
    return value.lower() or None


def verify_signature(
    header: str | None, *, app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str
) -> bool:
    """True when ``header`` is SHA-256(app_id + raw body + timestamp + OA secret key)."""
    given = signature_value(header)
    if given is None or not app_id or not oa_secret_key:
        return False
    expected = webhook_mac(app_id, raw_body, timestamp, oa_secret_key)
    return constant_time_equal(given, expected)
