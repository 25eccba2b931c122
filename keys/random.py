"""Randomness for identifiers and codes people type."""

import secrets

# Crockford's base32 alphabet: no I, L, O, U, so codes read aloud or typed survive.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def random_bytes(n: int) -> bytes:
    return secrets.token_bytes(n)


def new_token(length: int, alphabet: str = CROCKFORD) -> str:
    """A random string of ``length`` characters drawn uniformly from ``alphabet``.

    For a 32-character alphabet each character is 5 bits of one ``token_bytes`` call (intake
    makes several tokens per request; one system call each, not one per character).
    """
    if len(alphabet) != 32:
        return "".join(secrets.choice(alphabet) for _ in range(length))
    value = int.from_bytes(secrets.token_bytes((length * 5 + 7) // 8))
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in range(length))
