"""Which public keys may be sealed to: the process's key-certification trust (keys.certify).

Every public key the database stores (a tip's, a unit key version's, an officer's, a transit
epoch's) carries a certificate made when the key was created, by the key-certification key of
the service's configuration. The models hand out such keys with their *subject* (what the row
says the key is) and certificate attached (``Tip.public``, ``UnitKey.public``, …), and the
sealing contract (:mod:`tipline.models.sealed_fields`) calls :func:`require_certified` before
sealing to any of them: a key swapped, made up or moved by someone who can write the database
but does not hold the configuration is refused, nothing is sealed to it, an error is logged and
the runtime records a ``key_rejected`` audit event (:func:`on_rejected`).

The trust is the process's configuration, set once by ``tipline.runtime.Runtime`` (it is not
passed through every call that seals: there are dozens, and one forgotten argument would be a
hole). A process that never configured it refuses every stored key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from keys import (
    CERTIFICATION_LABEL,
    PublicKey,
    SigningKey,
    VerifyKey,
    certificate_is_valid,
    certify_public_key,
)

log = logging.getLogger(__name__)


class UncertifiedKey(Exception):
    """A public key without a valid certificate for the row it was read from."""

    def __init__(self, subject: str | None) -> None:
        super().__init__(f"public key of {subject or 'an unnamed row'} is not certified")
        self.subject = subject


# --- subjects: what a stored key is, from its row's identifiers ------------------------------


def tip_subject(tip_public_id: str) -> str:
    return f"key/tip:{tip_public_id}"


def unit_key_subject(unit_key_id: int, unit_id: int, version: int) -> str:
    return f"key/unit_key:{unit_key_id}:{unit_id}:{version}"


def officer_subject(officer_public_id: str) -> str:
    return f"key/officer:{officer_public_id}"


def transit_subject(epoch: int) -> str:
    return f"key/transit:{epoch}"


# --- the process's trust ------------------------------------------------------------------


class _Trust:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.verifier: VerifyKey | None = None
        self.certifier: SigningKey | None = None
        self.checked: dict[tuple[str, bytes, bytes], bool] = {}
        self.on_rejected: Callable[[str | None], None] | None = None


_trust = _Trust()
_CACHE_LIMIT = 10_000


def certifier_from(audit_signing_key: SigningKey) -> SigningKey:
    """The key-certification key, derived from the audit signing seed (keys.certify)."""
    return audit_signing_key.derive(CERTIFICATION_LABEL)


def configure(
    verifier: VerifyKey,
    certifier: SigningKey | None = None,
    on_rejected: Callable[[str | None], None] | None = None,
) -> None:
    """Trust keys certified by ``verifier``'s private half; certify new keys with
    ``certifier`` (None: this process only checks)."""
    if certifier is not None and certifier.verify_key != verifier:
        raise ValueError("the key-certification key does not match its public half")
    with _trust.lock:
        if _trust.verifier != verifier:
            _trust.checked.clear()
        _trust.verifier = verifier
        _trust.certifier = certifier
        _trust.on_rejected = on_rejected


def certify(subject: str, public: PublicKey) -> bytes:
    """The certificate of a key this process just made (raises without a certifier)."""
    certifier = _trust.certifier
    if certifier is None:
        raise UncertifiedKey(subject)
    return certify_public_key(certifier, public, subject)


def is_certified(public: PublicKey) -> bool:
    if public.local:  # the public half of a private key in this process's memory
        return True
    verifier = _trust.verifier
    if verifier is None or public.subject is None or not public.certificate:
        return False
    cache_key = (public.subject, public.to_bytes(), bytes(public.certificate))
    found = _trust.checked.get(cache_key)
    if found is None:
        found = certificate_is_valid(verifier, public, public.subject, public.certificate)
        with _trust.lock:
            if len(_trust.checked) >= _CACHE_LIMIT:
                _trust.checked.clear()
            _trust.checked[cache_key] = found
    return found


def require_certified(public: PublicKey) -> None:
    """Refuse to go on with a key that is not certified for its row (the sealing check)."""
    if not accept(public):
        raise UncertifiedKey(public.subject)


def accept(public: PublicKey) -> bool:
    """Whether ``public`` may be sealed to; a refusal is logged and reported (audited) here,
    for the callers that go on without that key (an optional fallback grant, a follow-up
    that starts a new tip instead of joining)."""
    if is_certified(public):
        return True
    log.error(
        "refused to seal to the public key of %s: its certificate is missing or wrong "
        "(a key swapped in the database?)",
        public.subject or "an unnamed row",
    )
    hook = _trust.on_rejected
    if hook is not None:
        try:
            hook(public.subject)
        except Exception:  # the refusal stands whatever happens to its record
            log.exception("could not record the refused key")
    return False
