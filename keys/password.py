"""Argon2id for people's secrets: password hashes and key wrapping.

An officer's private key is wrapped twice: under a key derived from the password, and under a
key derived from a recovery code shown once at enrolment. The Argon2id parameters are stored
in each hash and each wrap, so costs can rise without breaking old accounts.

Every Argon2id run that checks a secret goes through :func:`_derive` (wraps) or
:func:`_verify` (password hashes), named with its cost: the tests count them there to show
that a refusal costs the same whether or not the account or the code exists.
"""

from __future__ import annotations

import base64
import functools
import struct
from dataclasses import dataclass
from typing import NoReturn

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.keypair import PrivateKey
from keys.random import new_token, random_bytes


class WrongSecret(Exception):
    """The password or recovery code does not open this wrap."""


@dataclass(frozen=True)
class KdfCost:
    """Argon2id cost: iterations, memory in KiB, lanes."""

    time_cost: int
    memory_kib: int
    parallelism: int


# RFC 9106's second recommended option (64 MiB, t=3), about 0.1 s per derivation here.
STANDARD_COST = KdfCost(time_cost=3, memory_kib=64 * 1024, parallelism=4)
# For tests only: fast enough to create hundreds of officers.
FAST_TEST_COST = KdfCost(time_cost=1, memory_kib=8, parallelism=1)

_WRAP_MAGIC = b"TW"
_WRAP_HEADER = struct.Struct(">2sBIIB16s12s")  # magic, version, t, m, p, salt, nonce


def _derive(secret: str, salt: bytes, cost: KdfCost) -> bytes:
    return hash_secret_raw(
        secret.encode(),
        salt,
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=cost.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def wrap_with_secret(key: PrivateKey, secret: str, *, cost: KdfCost, binding: str) -> bytes:
    """Encrypt ``key`` under Argon2id(``secret``); ``binding`` names the row and the purpose."""
    salt = random_bytes(16)
    nonce = random_bytes(12)
    header = _WRAP_HEADER.pack(
        _WRAP_MAGIC, 1, cost.time_cost, cost.memory_kib, cost.parallelism, salt, nonce
    )
    kek = _derive(secret, salt, cost)
    return header + AESGCM(kek).encrypt(nonce, key.to_bytes(), header + binding.encode())


def unwrap_with_secret(wrapped: bytes, secret: str, *, binding: str) -> PrivateKey:
    """Open a wrap made by :func:`wrap_with_secret`; raise :class:`WrongSecret` otherwise."""
    if len(wrapped) <= _WRAP_HEADER.size:
        raise WrongSecret("wrap too short")
    magic, version, t, m, p, salt, nonce = _WRAP_HEADER.unpack_from(wrapped)
    if magic != _WRAP_MAGIC or version != 1:
        raise WrongSecret("unknown wrap format")
    header = wrapped[: _WRAP_HEADER.size]
    kek = _derive(secret, salt, KdfCost(t, m, p))
    try:
        raw = AESGCM(kek).decrypt(nonce, wrapped[_WRAP_HEADER.size :], header + binding.encode())
    except InvalidTag as exc:
        raise WrongSecret("secret does not open this wrap") from exc
    return PrivateKey.from_bytes(raw)


def _hasher(cost: KdfCost) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=cost.parallelism,
        type=Type.ID,
    )


def hash_password(password: str, *, cost: KdfCost) -> str:
    """An Argon2id PHC string (parameters included) for login checks."""
    return _hasher(cost).hash(password)


def _verify(stored_hash: str, password: str, cost: KdfCost) -> bool:
    """One Argon2id run at ``cost``, the stored hash's own parameters."""
    try:
        return PasswordHasher().verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; the stored hash carries its own parameters."""
    try:
        found = extract_parameters(stored_hash)
    except InvalidHashError:
        return False
    cost = KdfCost(found.time_cost, found.memory_cost, found.parallelism)
    return _verify(stored_hash, password, cost)


@functools.cache
def _decoy_hash(cost: KdfCost) -> str:
    """A well-formed Argon2id hash at ``cost`` that no password matches (its digest is random,
    not computed: making it costs no Argon2id run, so the first refusal is not slower)."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=")

    params = f"m={cost.memory_kib},t={cost.time_cost},p={cost.parallelism}"
    return f"$argon2id$v=19${params}${b64(random_bytes(16))}${b64(random_bytes(32))}"


def refuse_password(password: str, cost: KdfCost) -> bool:
    """False, after the Argon2id run a wrong password costs at ``cost``: the answer for an
    account that does not exist takes as long as for one that does."""
    _verify(_decoy_hash(cost), password, cost)
    return False


def refuse_secret(secret: str, cost: KdfCost) -> NoReturn:
    """Raise :class:`WrongSecret` after the run :func:`unwrap_with_secret` makes at ``cost``:
    a recovery code for an account that does not exist costs what a wrong one does."""
    _derive(secret, random_bytes(16), cost)
    raise WrongSecret("nothing to open")


def password_needs_rehash(stored_hash: str, cost: KdfCost) -> bool:
    return _hasher(cost).check_needs_rehash(stored_hash)


def new_recovery_code() -> str:
    """A one-time recovery code: 25 Crockford base32 characters (125 bits) in five groups."""
    raw = new_token(25)
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def normalise_recovery_code(code: str) -> str:
    """Accept what people type: lower case, spaces, and the letters Crockford maps to digits."""
    cleaned = code.upper().replace(" ", "").replace("-", "")
    cleaned = cleaned.translate(str.maketrans("OIL", "011"))
    return "-".join(cleaned[i : i + 5] for i in range(0, len(cleaned), 5))
