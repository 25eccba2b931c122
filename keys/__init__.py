"""All of Tipline's cryptography, as a handful of recipes.

Nothing outside this package imports a cryptographic primitive. The recipes:

- :func:`generate_keypair`, :func:`seal`, :func:`open_sealed`: HPKE (RFC 9180) envelopes whose
  associated context binds the purpose and the database row they belong to.
- :func:`seal_with_key`, :func:`open_with_key`, :func:`new_secret_key`: AES-256-GCM under a
  random key kept apart (in the volatile key store), for values erased by deleting the key.
- :func:`grant`, :func:`open_grant`: a private key sealed to another key's public half; the
  links of the key chain from an officer to a tip.
- :func:`wrap_with_secret`, :func:`unwrap_with_secret`, :func:`hash_password`,
  :func:`verify_password`, :func:`new_recovery_code`: Argon2id for people's secrets;
  :func:`refuse_password`, :func:`refuse_secret`: the same cost for an account that does not
  exist.
- :func:`keyed_digest`, :func:`webhook_mac`, :func:`constant_time_equal`: keyed hashes and the
  Zalo webhook signature.
- :func:`new_challenge`, :func:`work_is_valid`, :func:`new_passphrase`: the web form's
  proof of work and the informant's passphrase.
- :func:`certify_public_key`, :func:`certificate_is_valid`: public keys signed with the row
  they belong to, checked before anything is sealed to them (``keys.certify``).
- :func:`chain_hash`, :func:`generate_signing_key`, :class:`SigningKey`, :class:`VerifyKey`:
  the audit hash chain and its Ed25519-signed checkpoints.
- :func:`sign_token`, :func:`open_token`: signed, expiring tokens a browser carries instead
  of a server-side session.
- :func:`new_pkce_verifier`, :func:`pkce_challenge`: PKCE (S256) for Zalo's OA consent.
"""

from keys.certify import (
    CERTIFICATION_LABEL,
    certificate_is_valid,
    certify_public_key,
)
from keys.digest import (
    chain_hash,
    constant_time_equal,
    file_checksum,
    fingerprint,
    keyed_digest,
    keyed_digest_of_bytes,
    webhook_mac,
)
from keys.envelope import EnvelopeError, envelope_key_version, open_sealed, seal
from keys.grants import grant, open_grant
from keys.keypair import PrivateKey, PublicKey, generate_keypair
from keys.password import (
    FAST_TEST_COST,
    STANDARD_COST,
    KdfCost,
    WrongSecret,
    hash_password,
    new_recovery_code,
    password_needs_rehash,
    refuse_password,
    refuse_secret,
    unwrap_with_secret,
    verify_password,
    wrap_with_secret,
)
from keys.pkce import new_pkce_verifier, pkce_challenge
from keys.random import new_token, random_bytes
from keys.secret_box import new_secret_key, open_with_key, seal_with_key
from keys.session import new_session_secret, unwrap_from_session, wrap_for_session
from keys.signed import BadToken, open_token, sign_token
from keys.signing import SigningKey, VerifyKey, generate_signing_key
from keys.tls import client_tls_context
from keys.work import (
    new_challenge,
    new_passphrase,
    normalise_passphrase,
    solve_work,
    work_is_valid,
)

__all__ = [
    "CERTIFICATION_LABEL",
    "FAST_TEST_COST",
    "STANDARD_COST",
    "BadToken",
    "EnvelopeError",
    "KdfCost",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "VerifyKey",
    "WrongSecret",
    "certificate_is_valid",
    "certify_public_key",
    "chain_hash",
    "client_tls_context",
    "constant_time_equal",
    "envelope_key_version",
    "file_checksum",
    "fingerprint",
    "generate_keypair",
    "generate_signing_key",
    "grant",
    "hash_password",
    "keyed_digest",
    "keyed_digest_of_bytes",
    "new_challenge",
    "new_passphrase",
    "new_pkce_verifier",
    "new_recovery_code",
    "new_secret_key",
    "new_session_secret",
    "new_token",
    "normalise_passphrase",
    "open_grant",
    "open_sealed",
    "open_token",
    "open_with_key",
    "password_needs_rehash",
    "pkce_challenge",
    "random_bytes",
    "refuse_password",
    "refuse_secret",
    "seal",
    "seal_with_key",
    "sign_token",
    "solve_work",
    "unwrap_from_session",
    "unwrap_with_secret",
    "verify_password",
    "webhook_mac",
    "work_is_valid",
    "wrap_for_session",
    "wrap_with_secret",
]
