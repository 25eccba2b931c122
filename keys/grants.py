"""Grants: a private key sealed to another key's public half.

The key chain from an officer to a tip is a series of grants: officer → unit key (and parent
unit keys → child unit keys) → tip key. Transfer and rotation re-seal grants, never content.

A private key has one length per suite, so a grant's length says nothing: grants are sealed
without padding (every grant of a suite has the same length anyway).
"""

from keys.envelope import open_sealed, seal
from keys.keypair import PrivateKey, PublicKey

GRANT_PURPOSE = "grant"


def grant(
    subject: PrivateKey, holder: PublicKey, *, binding: str, holder_version: int | None = None
) -> bytes:
    """Seal ``subject`` so that whoever holds ``holder``'s private half can open it."""
    return seal(
        holder,
        subject.to_bytes(),
        purpose=GRANT_PURPOSE,
        binding=binding,
        key_version=holder_version,
        pad=False,
    )


def open_grant(sealed: bytes, holder: PrivateKey, *, binding: str) -> PrivateKey:
    """Open a grant made by :func:`grant`; raises ``EnvelopeError`` when it is not ours."""
    return PrivateKey.from_bytes(
        open_sealed(holder, sealed, purpose=GRANT_PURPOSE, binding=binding)
    )
