"""PKCE (RFC 7636) for Zalo's OA consent: a random verifier and its S256 challenge."""

import base64
import hashlib
import secrets

# 32 random bytes: 43 base64url characters, the shortest verifier RFC 7636 allows (and what
# Zalo's PHP SDK makes).
VERIFIER_BYTES = 32


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_pkce_verifier() -> str:
    """A fresh ``code_verifier``: 256 random bits, base64url without padding."""
    return _b64url(secrets.token_bytes(VERIFIER_BYTES))


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of ``verifier``: base64url(SHA-256(verifier))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
