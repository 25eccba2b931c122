"""Sealing under a random secret key (AES-256-GCM), for values whose key lives elsewhere.

The key is 32 random bytes kept apart from the sealed value: in the volatile key store, never
on disk, so that deleting the key (or letting it expire) erases the value wherever copies of
the ciphertext survive (database free pages, WAL, backups). Like envelopes, the associated
data binds the purpose and the row, so a value copied to another row does not open.

Layout: ``b"TS"`` | format version (1 byte) | 12-byte nonce | ciphertext and tag.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.envelope import EnvelopeError

MAGIC = b"TS"
FORMAT_VERSION = 1
KEY_BYTES = 32
_NONCE = 12


def new_secret_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aad(purpose: str, binding: str) -> bytes:
    return b"tipline/secret-box\x00" + purpose.encode() + b"\x00" + binding.encode()


def seal_with_key(key: bytes, plaintext: bytes, *, purpose: str, binding: str) -> bytes:
    nonce = os.urandom(_NONCE)
    body = AESGCM(key).encrypt(nonce, plaintext, _aad(purpose, binding))
    return MAGIC + bytes([FORMAT_VERSION]) + nonce + body


def open_with_key(key: bytes, sealed: bytes, *, purpose: str, binding: str) -> bytes:
    """The plaintext; :class:`keys.EnvelopeError` for another key, purpose or row."""
    header = len(MAGIC) + 1
    if len(sealed) < header + _NONCE + 16 or sealed[: len(MAGIC)] != MAGIC:
        raise EnvelopeError("not a secret box")
    if sealed[len(MAGIC)] != FORMAT_VERSION:
        raise EnvelopeError("unknown secret box format")
    nonce = sealed[header : header + _NONCE]
    try:
        return AESGCM(key).decrypt(nonce, sealed[header + _NONCE :], _aad(purpose, binding))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("secret box does not open with this key, purpose and row") from exc
