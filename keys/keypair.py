"""Key pairs for HPKE sealing.

A key carries the id of the HPKE suite it belongs to, so an envelope can name its suite and a
post-quantum suite can be added later without a format break.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from keys.suites import DEFAULT_SUITE, SUITES


@dataclass(frozen=True)
class PublicKey:
    """The public half: safe to store in plaintext columns.

    ``version`` says which version of a versioned key this is (a unit key's version, a
    transit epoch): envelopes sealed to it carry it in their header, so the holder knows which
    private half opens them. It is not part of the key's bytes.
    """

    suite_id: int
    raw: bytes
    version: int = field(default=0, compare=False)
    # What the key claims to be and the signature that says so (keys.certify), for a key read
    # from storage; ``local`` for the public half of a private key this process holds.
    subject: str | None = field(default=None, compare=False)
    certificate: bytes | None = field(default=None, compare=False, repr=False)
    local: bool = field(default=False, compare=False)

    def claiming(self, subject: str, certificate: bytes | None) -> PublicKey:
        """This key as read from the row ``subject``, with the certificate stored there."""
        return replace(self, subject=subject, certificate=certificate, local=False)

    def with_version(self, version: int) -> PublicKey:
        return replace(self, version=version)

    def to_bytes(self) -> bytes:
        """Suite id byte followed by the raw key, the form stored in the database."""
        return bytes([self.suite_id]) + self.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        if not data or data[0] not in SUITES:
            raise ValueError("unknown key suite")
        suite = SUITES[data[0]]
        if len(data) - 1 != suite.public_key_length:
            raise ValueError("public key has the wrong length")
        return cls(data[0], bytes(data[1:]))

    def _native(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


class PrivateKey:
    """The private half. Never stored except sealed (a grant) or wrapped (a password)."""

    __slots__ = ("_key", "_public", "suite_id")

    def __init__(self, suite_id: int, key: X25519PrivateKey) -> None:
        self.suite_id = suite_id
        self._key = key
        self._public: PublicKey | None = None

    def __repr__(self) -> str:  # never print key material
        return f"<PrivateKey suite={self.suite_id}>"

    @property
    def public_key(self) -> PublicKey:
        if self._public is None:  # derived once: intake seals to the transit key per request
            self._public = PublicKey(
                self.suite_id, self._key.public_key().public_bytes_raw(), local=True
            )
        return self._public

    def to_bytes(self) -> bytes:
        """Serialise for sealing or wrapping only."""
        return bytes([self.suite_id]) + self._key.private_bytes_raw()

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateKey:
        if not data or data[0] not in SUITES:
            raise ValueError("unknown key suite")
        return cls(data[0], X25519PrivateKey.from_private_bytes(bytes(data[1:])))

    def _native(self) -> X25519PrivateKey:
        return self._key


def generate_keypair(suite_id: int = DEFAULT_SUITE) -> PrivateKey:
    """A fresh key pair; its public half is ``.public_key``."""
    if suite_id not in SUITES:
        raise ValueError("unknown key suite")
    return PrivateKey(suite_id, X25519PrivateKey.generate())
