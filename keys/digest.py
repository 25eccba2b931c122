"""Keyed digests and the Zalo webhook signature."""

import hashlib
import hmac


def keyed_digest(key: bytes, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, separated by ``purpose``; hex.

    Used for the informant alias (links one informant's tips without revealing who they are)
    and for de-duplication keys that must not expose Zalo's own message ids.
    """
    return hmac.new(key, purpose.encode() + b"\x00" + value.encode(), hashlib.sha256).hexdigest()


def keyed_digest_of_bytes(key: bytes, purpose: str, value: bytes) -> str:
    """:func:`keyed_digest` of bytes that need not be text (a body kept only as a digest)."""
    return hmac.new(key, purpose.encode() + b"\x00" + value, hashlib.sha256).hexdigest()


def fingerprint(data: bytes) -> str:
    """SHA-256 hex of ``data``: names bytes that carry no id of their own (never a secret)."""
    return hashlib.sha256(data).hexdigest()


def webhook_mac(app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """Zalo's ``X-ZEvent-Signature``: plain SHA-256 of the concatenation, lowercase hex.

    Not an HMAC: this is Zalo's formula (research/zalo.md §1.2) and the raw body bytes must be
    hashed exactly as received.
    """
    digest = hashlib.sha256()
    digest.update(app_id.encode())
    digest.update(raw_body)
    digest.update(timestamp.encode())
    digest.update(oa_secret_key.encode())
    return digest.hexdigest()


def chain_hash(previous: str, canonical: str) -> str:
    """One link of the audit hash chain: SHA-256 of the previous link's hex and the event.

    ``previous`` is always 64 hex characters, so the concatenation is unambiguous. Hex in and
    out because that is how links are stored and compared; verification calls this once per
    event, so it stays a single hashlib call.
    """
    return hashlib.sha256((previous + canonical).encode()).hexdigest()


def file_checksum(data: bytes) -> str:
    """MD5 hex of a file, only because Zalo's file events carry one (zalo.md §1.3).

    Never used for integrity or security: it lets the simulator send what Zalo sends.
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets without leaking where they differ."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)
