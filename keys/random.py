"""Randomness for identifiers and codes people type."""

import secrets

# Crockford's base32 alphabet: no I, L, O, U, so codes read aloud or typed survive.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def random_bytes(n: int) -> bytes:
    return secrets.token_bytes(n)


def new_token(length: int, alphabet: str = CROCKFORD) -> str:
    """A random string of ``length`` characters drawn uniformly from ``alphabet``."""
    return "".join(secrets.choice(alphabet) for _ in range(length))
