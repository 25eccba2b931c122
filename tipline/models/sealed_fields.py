"""The sealing contract: every sealed field, where it is stored, what seals it, and how.

A sealed value opens only under the purpose and the binding it was sealed with, so these
strings are part of the stored data: change one and every value already stored under it
stops opening (tests/test_sealed_fields.py pins each of them). Nothing outside this module
names a purpose or spells a binding: code seals and opens through the fields below and gives
the row's identifiers, e.g. ``MESSAGE_BODY.seal(tip.public, body, message_public_id=...)``.

The mechanisms are the recipes of ``keys``:

- :class:`Envelope`: an HPKE envelope to a public key; its context binds the purpose and the
  binding, so a value copied to another row or read as another field does not open.
- :class:`Grant`: a private key sealed the same way to a holder's key, purpose ``"grant"``
  (``keys.grants``): the links of the key chain.
- :class:`SecretWrap`: a private key under Argon2id of a person's secret. No purpose: the
  binding says what the wrap is.
- :class:`SessionWrap`: the officer key in the server-side session, under the secret the
  officer's cookie holds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any, cast

from keys import (
    KdfCost,
    PrivateKey,
    PublicKey,
    grant,
    open_grant,
    open_sealed,
    open_with_key,
    seal,
    seal_with_key,
    unwrap_from_session,
    unwrap_with_secret,
    wrap_for_session,
    wrap_with_secret,
)
from keys.grants import GRANT_PURPOSE


class SealedBy(Enum):
    """The key (or secret) a field is sealed to."""

    TRANSIT = auto()  # the current transit epoch (tipline.transit): a tip until dispatch
    RELAY = auto()  # the OA token key (TIPLINE_RELAY_KEY): the OAs' Zalo tokens
    UNIT = auto()  # a unit's current key version: an event's fallback (tipline.transit)
    VOLATILE = auto()  # a key in the volatile key store only (tipline.keystore)
    TIP = auto()  # one key pair per tip: its content
    OFFICER = auto()  # the officer's own key pair
    HOLDER = auto()  # a grant's holder: the transit key, a unit key or an officer key
    PASSWORD = auto()  # the officer's password (Argon2id)
    RECOVERY_CODE = auto()  # the officer's one-time recovery code (Argon2id)
    PASSPHRASE = auto()  # the web informant's passphrase, shown once (Argon2id)
    SESSION_SECRET = auto()  # the unlock cookie's secret (before TOTP: the session's own)
    NO_ONE = auto()  # a random secret nobody keeps


# --- binding formats: one function per format, a function of the row's identifiers -------


def message_binding(message_public_id: str) -> str:
    return f"message:{message_public_id}"


def tip_binding(tip_public_id: str) -> str:
    return f"tip:{tip_public_id}"


def reply_address_binding(informant_alias: str) -> str:
    """Bound to the alias, so intake can seal the address before it knows the row."""
    return f"reply_address:{informant_alias}"


def oa_tokens_binding(oa_id: str) -> str:
    return f"oa_tokens:{oa_id}"


def inbound_event_binding(dedup_key: str) -> str:
    return f"inbound:{dedup_key}"


def quarantine_binding(digest: str) -> str:
    return f"quarantine:{digest}"


def attachment_binding(attachment_public_id: str) -> str:
    return f"attachment:{attachment_public_id}"


def attachment_fetch_binding(attachment_public_id: str) -> str:
    return f"attachment-fetch:{attachment_public_id}"


def upload_binding(attachment_public_id: str) -> str:
    return f"upload:{attachment_public_id}"


def officer_binding(officer_public_id: str) -> str:
    return f"officer:{officer_public_id}"


def officer_password_binding(officer_public_id: str) -> str:
    return f"officer:{officer_public_id}:password"


def officer_recovery_binding(officer_public_id: str) -> str:
    return f"officer:{officer_public_id}:recovery"


def informant_key_binding(receipt_code: str) -> str:
    return f"informant_key:{receipt_code}"


def decoy_binding() -> str:
    return "decoy"


def session_binding(officer_public_id: str) -> str:
    return officer_public_id


def grant_binding(subject_kind: str, subject_id: int, holder_kind: str, holder_id: int) -> str:
    """``subject_kind`` and ``holder_kind`` are ``models.Subject`` and ``models.Holder``."""
    return f"grant:{subject_kind}:{subject_id}>{holder_kind}:{holder_id}"


# --- the mechanisms ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Field[**P]:
    name: str
    # "table.column", or where a value outside the database is kept.
    stored_in: str
    sealed_by: SealedBy
    binding: Callable[P, str]

    @property
    def binding_format(self) -> str:
        """The binding with each identifier shown as ``{name}``: "message:{message_public_id}"."""
        names = inspect.signature(self.binding).parameters
        render = cast(Callable[..., str], self.binding)
        return render(**{name: "{" + name + "}" for name in names})


@dataclass(frozen=True)
class Envelope[**P](_Field[P]):
    purpose: str

    def seal(
        self, public: PublicKey, plaintext: bytes, /, *args: P.args, **kwargs: P.kwargs
    ) -> bytes:
        return seal(public, plaintext, purpose=self.purpose, binding=self.binding(*args, **kwargs))

    def open(
        self, private: PrivateKey, envelope: bytes, /, *args: P.args, **kwargs: P.kwargs
    ) -> bytes:
        """The plaintext; ``keys.EnvelopeError`` for another key, field or row."""
        return open_sealed(
            private, envelope, purpose=self.purpose, binding=self.binding(*args, **kwargs)
        )


@dataclass(frozen=True)
class Grant[**P](_Field[P]):
    purpose: str = field(default=GRANT_PURPOSE, init=False)

    def seal(
        self, subject: PrivateKey, holder: PublicKey, /, *args: P.args, **kwargs: P.kwargs
    ) -> bytes:
        return grant(subject, holder, binding=self.binding(*args, **kwargs))

    def open(
        self, sealed: bytes, holder: PrivateKey, /, *args: P.args, **kwargs: P.kwargs
    ) -> PrivateKey:
        """The subject key; ``keys.EnvelopeError`` for another holder or row."""
        return open_grant(sealed, holder, binding=self.binding(*args, **kwargs))


@dataclass(frozen=True)
class SecretBox[**P](_Field[P]):
    purpose: str

    def seal(self, key: bytes, plaintext: bytes, /, *args: P.args, **kwargs: P.kwargs) -> bytes:
        return seal_with_key(
            key, plaintext, purpose=self.purpose, binding=self.binding(*args, **kwargs)
        )

    def open(self, key: bytes, sealed: bytes, /, *args: P.args, **kwargs: P.kwargs) -> bytes:
        """The plaintext; ``keys.EnvelopeError`` for another key, field or row."""
        return open_with_key(
            key, sealed, purpose=self.purpose, binding=self.binding(*args, **kwargs)
        )


@dataclass(frozen=True)
class SecretWrap[**P](_Field[P]):
    purpose: None = field(default=None, init=False)

    def wrap(
        self, key: PrivateKey, secret: str, cost: KdfCost, /, *args: P.args, **kwargs: P.kwargs
    ) -> bytes:
        return wrap_with_secret(key, secret, cost=cost, binding=self.binding(*args, **kwargs))

    def unwrap(
        self, wrapped: bytes, secret: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> PrivateKey:
        """The key; ``keys.WrongSecret`` for another secret or row."""
        return unwrap_with_secret(wrapped, secret, binding=self.binding(*args, **kwargs))


@dataclass(frozen=True)
class SessionWrap[**P](_Field[P]):
    purpose: None = field(default=None, init=False)

    def wrap(self, key: PrivateKey, secret: bytes, /, *args: P.args, **kwargs: P.kwargs) -> bytes:
        return wrap_for_session(key, secret, binding=self.binding(*args, **kwargs))

    def unwrap(
        self, wrapped: bytes, secret: bytes, /, *args: P.args, **kwargs: P.kwargs
    ) -> PrivateKey:
        """The key; ``keys.WrongSecret`` for another secret or officer."""
        return unwrap_from_session(wrapped, secret, binding=self.binding(*args, **kwargs))


# --- the table ---------------------------------------------------------------------------

# A tip's content, sealed to its key.
MESSAGE_BODY = Envelope(
    name="MESSAGE_BODY",
    stored_in="messages.sealed_body",
    sealed_by=SealedBy.TIP,
    purpose="message",
    binding=message_binding,
)
TIP_ROUTING = Envelope(
    name="TIP_ROUTING",
    stored_in="tips.sealed_routing",
    sealed_by=SealedBy.TIP,
    purpose="routing",
    binding=tip_binding,
)
ATTACHMENT_SOURCE = Envelope(
    name="ATTACHMENT_SOURCE",
    stored_in="attachments.sealed_source",
    sealed_by=SealedBy.TIP,
    purpose="attachment_source",
    binding=attachment_binding,
)
ATTACHMENT_FILE = Envelope(
    name="ATTACHMENT_FILE",
    stored_in="file store, named by attachments.storage_ref",
    sealed_by=SealedBy.TIP,
    purpose="attachment_file",
    binding=attachment_binding,
)

# What the intake tier and its workers open with the transit key.
INBOUND_EVENT = Envelope(
    name="INBOUND_EVENT",
    stored_in="inbound_events.sealed_event",
    sealed_by=SealedBy.TRANSIT,
    purpose="inbound_event",
    binding=inbound_event_binding,
)
ATTACHMENT_FETCH = Envelope(
    name="ATTACHMENT_FETCH",
    stored_in="attachments.sealed_fetch",
    sealed_by=SealedBy.TRANSIT,
    purpose="attachment_fetch",
    binding=attachment_fetch_binding,
)
WEB_UPLOAD = Envelope(
    name="WEB_UPLOAD",
    stored_in="file store, named by the web report's files[].ref",
    sealed_by=SealedBy.TRANSIT,
    purpose="web_upload",
    binding=upload_binding,
)
TIP_REROUTE = Envelope(
    name="TIP_REROUTE",
    stored_in="tips.sealed_reroute",
    sealed_by=SealedBy.TRANSIT,
    purpose="reroute",
    binding=tip_binding,
)

# What the outbound worker opens with the relay key.
# The informant's Zalo id, under a key of its own kept only in the volatile key store for as
# long as Zalo lets the OA answer; STOP deletes that key (tipline.reply_addresses).
REPLY_ADDRESS = SecretBox(
    name="REPLY_ADDRESS",
    stored_in="reply_addresses.sealed_address",
    sealed_by=SealedBy.VOLATILE,
    purpose="reply_address",
    binding=reply_address_binding,
)
# Before the volatile key store: reply addresses sealed to the relay key (read, never written).
LEGACY_REPLY_ADDRESS = Envelope(
    name="LEGACY_REPLY_ADDRESS",
    stored_in="reply_addresses.sealed_address",
    sealed_by=SealedBy.RELAY,
    purpose="reply_address",
    binding=reply_address_binding,
)
# An event's second copy, for its unit's key holders if the transit epoch's key is lost.
INBOUND_EVENT_FALLBACK = Envelope(
    name="INBOUND_EVENT_FALLBACK",
    stored_in="inbound_events.sealed_fallback",
    sealed_by=SealedBy.UNIT,
    purpose="inbound_event_fallback",
    binding=inbound_event_binding,
)
# A signed Zalo event intake could not read, for the key holders of the unit that owns the
# receiving OA (tipline.models.quarantined_event): not a transit epoch, which would destroy
# it within the hour.
QUARANTINED_EVENT = Envelope(
    name="QUARANTINED_EVENT",
    stored_in="quarantined_events.sealed_event",
    sealed_by=SealedBy.UNIT,
    purpose="quarantined_event",
    binding=quarantine_binding,
)
# An officer's reply (JSON: the text, and for the answer to STOP its own address) until the
# outbound worker sends it, sealed to a transit epoch. Replies sealed to the relay key before
# epochs are not read: drain the queues before upgrading (docs/threat-model.md).
MESSAGE_FOR_RELAY = Envelope(
    name="MESSAGE_FOR_RELAY",
    stored_in="messages.sealed_for_relay",
    sealed_by=SealedBy.TRANSIT,
    purpose="outgoing",
    binding=message_binding,
)
OA_TOKENS = Envelope(
    name="OA_TOKENS",
    stored_in="official_accounts.sealed_tokens",
    sealed_by=SealedBy.RELAY,
    purpose="oa_tokens",
    binding=oa_tokens_binding,
)

# Officers' secrets.
OFFICER_TOTP_SECRET = Envelope(
    name="OFFICER_TOTP_SECRET",
    stored_in="officers.sealed_totp_secret",
    sealed_by=SealedBy.OFFICER,
    purpose="totp",
    binding=officer_binding,
)
OFFICER_KEY_PASSWORD_WRAP = SecretWrap(
    name="OFFICER_KEY_PASSWORD_WRAP",
    stored_in="officers.key_wrapped_by_password",
    sealed_by=SealedBy.PASSWORD,
    binding=officer_password_binding,
)
OFFICER_KEY_RECOVERY_WRAP = SecretWrap(
    name="OFFICER_KEY_RECOVERY_WRAP",
    stored_in="officers.key_wrapped_by_recovery",
    sealed_by=SealedBy.RECOVERY_CODE,
    binding=officer_recovery_binding,
)
OFFICER_KEY_SESSION_WRAP = SessionWrap(
    name="OFFICER_KEY_SESSION_WRAP",
    stored_in="server-side session: officer_key, and pending_enrolment.key before TOTP",
    sealed_by=SealedBy.SESSION_SECRET,
    binding=session_binding,
)

# The key chain: a tip key to the transit key or unit keys, a unit key to its parent's key
# or to officers.
KEY_GRANT = Grant(
    name="KEY_GRANT",
    stored_in="key_grants.sealed",
    sealed_by=SealedBy.HOLDER,
    binding=grant_binding,
)

# The web informant's way back to their tip (/tra-cuu).
INFORMANT_KEY_WRAP = SecretWrap(
    name="INFORMANT_KEY_WRAP",
    stored_in="tips.informant_key",
    sealed_by=SealedBy.PASSPHRASE,
    binding=informant_key_binding,
)
# Tried for an unknown receipt code, so the answer takes as long as for a known one.
DECOY_WRAP = SecretWrap(
    name="DECOY_WRAP",
    stored_in="memory only",
    sealed_by=SealedBy.NO_ONE,
    binding=decoy_binding,
)

type SealedField = (
    Envelope[Any] | Grant[Any] | SecretBox[Any] | SecretWrap[Any] | SessionWrap[Any]
)

SEALED_FIELDS: tuple[SealedField, ...] = (
    MESSAGE_BODY,
    TIP_ROUTING,
    ATTACHMENT_SOURCE,
    ATTACHMENT_FILE,
    INBOUND_EVENT,
    INBOUND_EVENT_FALLBACK,
    QUARANTINED_EVENT,
    ATTACHMENT_FETCH,
    WEB_UPLOAD,
    TIP_REROUTE,
    REPLY_ADDRESS,
    LEGACY_REPLY_ADDRESS,
    MESSAGE_FOR_RELAY,
    OA_TOKENS,
    OFFICER_TOTP_SECRET,
    OFFICER_KEY_PASSWORD_WRAP,
    OFFICER_KEY_RECOVERY_WRAP,
    OFFICER_KEY_SESSION_WRAP,
    KEY_GRANT,
    INFORMANT_KEY_WRAP,
    DECOY_WRAP,
)
