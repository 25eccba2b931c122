"""Certified public keys: a public key signed together with the row it belongs to.

Sealing to a public key read from the database trusts whoever can write the database: swap a
tip's or a unit's public key and every later follow-up, note and reply, or every new tip of the
unit, is sealed to the attacker. So each stored public key carries a certificate, an Ed25519
signature by the installation's key-certification key (a configuration secret, never in the
database) over the key and its *subject* (what the key is: "tip:<public id>",
"unit_key:<id>:<unit id>:<version>", …), and a key is checked against it before anything is
sealed to it. A key moved to another row no longer matches its subject; a key made up by the
database's writer has no valid signature.

The certification key is derived from the audit signing seed (:meth:`SigningKey.derive`), so
the processes that sign checkpoints (workers, staff tier, command line) are the ones that can
certify; the others get its public half only.
"""

from __future__ import annotations

from keys.keypair import PublicKey
from keys.signing import SigningKey, VerifyKey

CERTIFICATE_FORMAT = b"tipline-key-certificate/1\x00"
CERTIFICATION_LABEL = "tipline key certification/1"


def _message(public: PublicKey, subject: str) -> bytes:
    return CERTIFICATE_FORMAT + subject.encode() + b"\x00" + public.to_bytes()


def certify_public_key(certifier: SigningKey, public: PublicKey, subject: str) -> bytes:
    """The certificate (a 64-byte signature) of ``public`` as ``subject``."""
    return certifier.sign(_message(public, subject))


def certificate_is_valid(
    verifier: VerifyKey, public: PublicKey, subject: str, certificate: bytes | None
) -> bool:
    if not certificate:
        return False
    return verifier.verify(bytes(certificate), _message(public, subject))
