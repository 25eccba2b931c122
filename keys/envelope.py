"""Versioned HPKE envelopes.

Layout: ``b"TE"`` | format version (1 byte) | suite id (1 byte) | key version (4 bytes, big
endian) | HPKE ``enc || ciphertext``.

The HPKE ``info`` binds the header, the purpose (what the plaintext is: a message, a grant, a
reply address…) and the row it belongs to, so a ciphertext copied to another row or reused
for another purpose fails to open instead of being misread.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag

from keys.keypair import PrivateKey, PublicKey
from keys.suites import SUITES

MAGIC = b"TE"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">2sBBI")


class EnvelopeError(Exception):
    """The envelope is malformed, or the key, purpose or row does not match."""


def _info(header: bytes, purpose: str, binding: str) -> bytes:
    return b"tipline/envelope\x00" + header + purpose.encode() + b"\x00" + binding.encode()


def seal(
    public_key: PublicKey,
    plaintext: bytes,
    *,
    purpose: str,
    binding: str,
    key_version: int | None = None,
) -> bytes:
    """Encrypt ``plaintext`` to ``public_key`` for ``purpose`` on the row named by ``binding``.

    The header names ``key_version``, by default the public key's own ``version``.
    """
    if key_version is None:
        key_version = public_key.version
    suite = SUITES[public_key.suite_id]
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, public_key.suite_id, key_version)
    body = suite.hpke_suite.encrypt(
        plaintext, public_key._native(), info=_info(header, purpose, binding)
    )
    return header + body


def envelope_key_version(envelope: bytes) -> int:
    """The key version an envelope was sealed to, read from its header."""
    return _parse_header(envelope)[2]


def _parse_header(envelope: bytes) -> tuple[bytes, int, int]:
    if len(envelope) < _HEADER.size:
        raise EnvelopeError("envelope too short")
    magic, version, suite_id, key_version = _HEADER.unpack_from(envelope)
    if magic != MAGIC or version != FORMAT_VERSION or suite_id not in SUITES:
        raise EnvelopeError("unknown envelope format")
    return envelope[: _HEADER.size], suite_id, key_version


def open_sealed(private_key: PrivateKey, envelope: bytes, *, purpose: str, binding: str) -> bytes:
    """Decrypt an envelope made by :func:`seal`; raise :class:`EnvelopeError` on any mismatch."""
    header, suite_id, _ = _parse_header(envelope)
    if suite_id != private_key.suite_id:
        raise EnvelopeError("envelope sealed with another suite")
    suite = SUITES[suite_id]
    try:
        return suite.hpke_suite.decrypt(
            envelope[len(header) :], private_key._native(), info=_info(header, purpose, binding)
        )
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("envelope does not open with this key, purpose and row") from exc
