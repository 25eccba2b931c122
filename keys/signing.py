"""Ed25519 signatures, for audit checkpoints that can be exported and checked later.

A checkpoint is a small file naming the audit chain's head; its signature shows it was made
by this installation. Only the public half is needed to check one, so an auditor can pin the
key's fingerprint offline.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class VerifyKey:
    """The public half of a signing key: safe to print, pin and publish."""

    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.raw = bytes(raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw key, 32 hex characters: what an auditor compares by eye."""
        return hashlib.sha256(b"tipline-ed25519:" + self.raw).hexdigest()[:32]

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """The private half. Kept in the data dir's secrets; never logged."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:  # never print key material
        return "<SigningKey ed25519>"

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key().public_bytes_raw())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def derive(self, label: str) -> SigningKey:
        """Another signing key for another purpose, derived from this seed (HKDF-SHA256):
        whoever holds this key holds the derived one; its public half says nothing of this."""
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()
        ).derive(self.to_bytes())
        return SigningKey.from_bytes(seed)

    def to_bytes(self) -> bytes:
        """The 32-byte seed, for the secrets file only."""
        return self._key.private_bytes_raw()

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(data)))


def generate_signing_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())
