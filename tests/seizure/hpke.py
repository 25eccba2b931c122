"""RFC 9180 base mode for the attacker, split so a guess costs two HMACs, not a key exchange.

The product opens an envelope with one call (``keys.open_sealed``): an X25519 exchange, the key
schedule, AES-GCM. Searching a seized copy tries every key on every envelope with every
purpose and binding the product uses, so the exchange (which depends on the key and the
envelope's ``enc`` only) is done once per pair here and the schedule (which depends on the
``info``, i.e. on the purpose and binding) once per guess. The keystream also reads the start of
an envelope whose end is unknown or missing (a value cut by a page boundary): AES-GCM is a
stream cipher, and its tag is only needed to be sure.

Only the suites named in :data:`keys.suites.SUITES` whose parameters are described in
:data:`SUITE_PARAMS` are handled; tests/test_seizure.py checks this against the product's own
``seal`` (``self_check``), so a new suite fails that check instead of hiding envelopes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class SuiteParams:
    kem_id: int
    kdf_id: int
    aead_id: int
    enc_length: int


# keys.suites: suite 1 is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
SUITE_PARAMS = {1: SuiteParams(kem_id=0x0020, kdf_id=0x0001, aead_id=0x0002, enc_length=32)}
TAG = 16


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt or b"\x00" * 32, ikm, hashlib.sha256)


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hashlib.sha256)
        out += block
        counter += 1
    return out[:length]


class Suite:
    def __init__(self, params: SuiteParams) -> None:
        self.params = params
        self.kem_suite = b"KEM" + params.kem_id.to_bytes(2, "big")
        self.hpke_suite = (
            b"HPKE"
            + params.kem_id.to_bytes(2, "big")
            + params.kdf_id.to_bytes(2, "big")
            + params.aead_id.to_bytes(2, "big")
        )
        self.psk_id_hash = self._labeled_extract(self.hpke_suite, b"", b"psk_id_hash", b"")

    @staticmethod
    def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return _extract(salt, b"HPKE-v1" + suite + label + ikm)

    @staticmethod
    def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)

    def schedule_secret(self, private_raw: bytes, enc: bytes) -> bytes | None:
        """The key schedule's ``secret`` for this recipient key and ``enc`` (None: no exchange)."""
        try:
            private = X25519PrivateKey.from_private_bytes(private_raw)
            dh = private.exchange(X25519PublicKey.from_public_bytes(enc))
        except ValueError:  # a low-order point: not an envelope of ours
            return None
        recipient = private.public_key().public_bytes_raw()
        eae_prk = self._labeled_extract(self.kem_suite, b"", b"eae_prk", dh)
        shared = self._labeled_expand(
            self.kem_suite, eae_prk, b"shared_secret", enc + recipient, 32
        )
        return self._labeled_extract(self.hpke_suite, shared, b"secret", b"")

    def info_hash(self, info: bytes) -> bytes:
        return self._labeled_extract(self.hpke_suite, b"", b"info_hash", info)

    def key_and_nonce(self, secret: bytes, info_hash: bytes) -> tuple[bytes, bytes]:
        context = b"\x00" + self.psk_id_hash + info_hash
        key = self._labeled_expand(self.hpke_suite, secret, b"key", context, 32)
        nonce = self._labeled_expand(self.hpke_suite, secret, b"base_nonce", context, 12)
        return key, nonce


ZERO_BLOCK = bytes(16)


def first_block(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """The first 16 bytes of plaintext, without the tag: what a guess is judged on (AES-GCM's
    own encryption of a zero block is the keystream, and cheaper to set up than CTR)."""
    block = ciphertext[:16]
    stream = AESGCM(key).encrypt(nonce, ZERO_BLOCK, None)[: len(block)]
    mixed = int.from_bytes(block) ^ int.from_bytes(stream)
    return mixed.to_bytes(len(block))


def keystream_open(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """AES-GCM's plaintext without its tag check: for a prefix, or a value whose end is lost."""
    counter = nonce + b"\x00\x00\x00\x02"
    decryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
    return decryptor.update(ciphertext)


def tag_open(key: bytes, nonce: bytes, ciphertext_and_tag: bytes) -> bytes | None:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext_and_tag, b"")
    except (InvalidTag, ValueError):
        return None


SUITES = {suite_id: Suite(params) for suite_id, params in SUITE_PARAMS.items()}
