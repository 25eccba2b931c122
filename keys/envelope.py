"""Versioned HPKE envelopes.

Layout: ``b"TE"`` | format version (1 byte) | suite id (1 byte) | key version (4 bytes, big
endian) | HPKE ``enc || ciphertext``.

The HPKE ``info`` binds the header, the purpose (what the plaintext is: a message, a grant, a
reply address…) and the row it belongs to, so a ciphertext copied to another row or reused
for another purpose fails to open instead of being misread.

Format 2 (written since the seizure issue) seals a padded plaintext: its length (4 bytes, big
endian), the plaintext, then zeros up to the next multiple of 256 bytes while that is at most
4 KiB, and up to the next Padmé size above that (:func:`padded_size`). An envelope's length
then tells only which bucket its plaintext fell in, not how long a message was. Format 1
sealed the plaintext as is (its length was the envelope's minus 56 bytes); it is still read.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag

from keys.keypair import PrivateKey, PublicKey
from keys.suites import SUITES

MAGIC = b"TE"
FORMAT_VERSION = 1  # the plaintext sealed as is: read only
PADDED_FORMAT_VERSION = 2  # the plaintext framed and padded to its bucket: what seal writes
READABLE_VERSIONS = frozenset({FORMAT_VERSION, PADDED_FORMAT_VERSION})
_HEADER = struct.Struct(">2sBBI")
_LENGTH = struct.Struct(">I")

BUCKET_STEP = 256  # padded sizes are multiples of this ...
LINEAR_BUCKETS_UP_TO = 4096  # ... up to this size, then Padmé sizes


class EnvelopeError(Exception):
    """The envelope is malformed, or the key, purpose or row does not match."""


def _info(header: bytes, purpose: str, binding: str) -> bytes:
    return b"tipline/envelope\x00" + header + purpose.encode() + b"\x00" + binding.encode()


def padded_size(framed: int) -> int:
    """The bucket a framed plaintext of ``framed`` bytes (length prefix included) is padded to.

    Up to 4 KiB (messages, notes, addresses): multiples of 256 bytes. Above (files): Padmé
    (Nikitin et al., PETS 2019), which keeps all but the top few bits of the length's
    exponent, so a size leaks O(log log n) bits for at most 12 % more bytes, where rounding
    up to a power of two cost up to 100 %.
    """
    if framed <= LINEAR_BUCKETS_UP_TO:
        return max(BUCKET_STEP, -(-framed // BUCKET_STEP) * BUCKET_STEP)
    exponent = framed.bit_length() - 1
    mask = (1 << (exponent - exponent.bit_length())) - 1
    return (framed + mask) & ~mask


def _pad(plaintext: bytes, *, pad: bool) -> bytes:
    framed = _LENGTH.pack(len(plaintext)) + plaintext
    if not pad:
        return framed
    return framed + bytes(padded_size(len(framed)) - len(framed))


def _unpad(padded: bytes) -> bytes:
    if len(padded) < _LENGTH.size:
        raise EnvelopeError("padded plaintext without its length")
    (length,) = _LENGTH.unpack_from(padded)
    end = _LENGTH.size + length
    if end > len(padded):
        raise EnvelopeError("padded plaintext shorter than its stated length")
    if padded[end:].strip(b"\x00"):
        raise EnvelopeError("padding that is not zeros")
    return padded[_LENGTH.size : end]


def seal(
    public_key: PublicKey,
    plaintext: bytes,
    *,
    purpose: str,
    binding: str,
    key_version: int | None = None,
    pad: bool = True,
) -> bytes:
    """Encrypt ``plaintext`` to ``public_key`` for ``purpose`` on the row named by ``binding``.

    The header names ``key_version``, by default the public key's own ``version``. The
    plaintext is padded to its size bucket; ``pad=False`` only frames it, for plaintexts whose
    length is fixed and known anyway (a grant's private key).
    """
    if key_version is None:
        key_version = public_key.version
    suite = SUITES[public_key.suite_id]
    header = _HEADER.pack(MAGIC, PADDED_FORMAT_VERSION, public_key.suite_id, key_version)
    body = suite.hpke_suite.encrypt(
        _pad(plaintext, pad=pad), public_key._native(), info=_info(header, purpose, binding)
    )
    return header + body


def envelope_key_version(envelope: bytes) -> int:
    """The key version an envelope was sealed to, read from its header."""
    return _parse_header(envelope)[3]


def _parse_header(envelope: bytes) -> tuple[bytes, int, int, int]:
    if len(envelope) < _HEADER.size:
        raise EnvelopeError("envelope too short")
    magic, version, suite_id, key_version = _HEADER.unpack_from(envelope)
    if magic != MAGIC or version not in READABLE_VERSIONS or suite_id not in SUITES:
        raise EnvelopeError("unknown envelope format")
    return envelope[: _HEADER.size], version, suite_id, key_version


def open_sealed(private_key: PrivateKey, envelope: bytes, *, purpose: str, binding: str) -> bytes:
    """Decrypt an envelope made by :func:`seal`; raise :class:`EnvelopeError` on any mismatch."""
    header, version, suite_id, _ = _parse_header(envelope)
    if suite_id != private_key.suite_id:
        raise EnvelopeError("envelope sealed with another suite")
    suite = SUITES[suite_id]
    try:
        opened = suite.hpke_suite.decrypt(
            envelope[len(header) :], private_key._native(), info=_info(header, purpose, binding)
        )
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("envelope does not open with this key, purpose and row") from exc
    return opened if version == FORMAT_VERSION else _unpad(opened)
