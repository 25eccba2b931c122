"""Keeping an unlocked officer key between requests, split across the server and the browser.

The server-side session (in Redis) holds the officer's private key encrypted under a random
secret that only the officer's cookie carries: a Redis dump alone opens nothing, the cookie
alone holds no key, and logout or idle timeout deletes the server half.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.keypair import PrivateKey
from keys.password import WrongSecret
from keys.random import random_bytes

SECRET_BYTES = 32


def new_session_secret() -> bytes:
    return random_bytes(SECRET_BYTES)


def wrap_for_session(key: PrivateKey, secret: bytes, *, binding: str) -> bytes:
    nonce = random_bytes(12)
    return nonce + AESGCM(secret).encrypt(nonce, key.to_bytes(), b"session\x00" + binding.encode())


def unwrap_from_session(wrapped: bytes, secret: bytes, *, binding: str) -> PrivateKey:
    if len(secret) != SECRET_BYTES or len(wrapped) < 13:
        raise WrongSecret("session key material is malformed")
    try:
        raw = AESGCM(secret).decrypt(wrapped[:12], wrapped[12:], b"session\x00" + binding.encode())
    except InvalidTag as exc:
        raise WrongSecret("session key does not open with this cookie") from exc
    return PrivateKey.from_bytes(raw)
