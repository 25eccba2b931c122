"""How to reach an informant again, for exactly as long as Zalo allows and they want.

An informant's reply address (their Zalo user id, or the anonymous chat's ids) is sealed
under a key of its own (:data:`tipline.models.sealed_fields.REPLY_ADDRESS`) that lives only in
the volatile key store (tipline.keystore), never on a disk:

- each message from the informant seals the address again and keeps that key for Zalo's
  reply window (:data:`tipline.time_rules.ZALO_REPLY_WINDOW`) from now;
- when the window closes, the key store forgets the key by itself: every copy of the sealed
  address (the row, database free pages, WAL, backups) is unreadable from then on;
- "STOP" / "XÓA" deletes the key at once (:func:`destroy`).

Addresses sealed before the key store existed were sealed to the relay key; the outbound
worker still reads those (:func:`open_address`) until they are re-sealed or expire.
"""

from __future__ import annotations

import json
from datetime import timedelta

from keys import EnvelopeError, PrivateKey, new_secret_key
from tipline.keystore import Keystore
from tipline.models.sealed_fields import LEGACY_REPLY_ADDRESS, REPLY_ADDRESS

LEGACY_MAGIC = b"TE"  # an HPKE envelope: sealed to the relay key


ALIAS_KEY = "informant-alias-key"


def informant_alias_key(keystore: Keystore) -> bytes:
    """The key that turns a Zalo id into an informant alias, kept in the volatile key store.

    With a configured key, a seized disk would confirm a guessed Zalo id (the stored alias is
    its HMAC). Kept here instead, it is made once and lives as long as the key store: after a
    restart a returning informant gets a new alias (and pseudonym), and their earlier tips are
    no longer linked to them. That is the price, and it is paid for secrecy.
    """
    return keystore.get_or_make(ALIAS_KEY, new_secret_key)


def _name(informant_alias: str) -> str:
    return f"address:{informant_alias}"


def seal_address(
    keystore: Keystore, informant_alias: str, address: dict[str, str], window: timedelta
) -> bytes:
    """The address sealed under the informant's address key, kept for ``window`` from now."""
    name = _name(informant_alias)
    key = keystore.get_and_extend(name, window)
    if key is None:
        key = new_secret_key()
        if not keystore.put(name, key, window, only_if_new=True):  # another worker was first
            key = keystore.get_and_extend(name, window) or key
    return REPLY_ADDRESS.seal(key, json.dumps(address).encode(), informant_alias=informant_alias)


def open_address(
    keystore: Keystore,
    informant_alias: str,
    sealed: bytes,
    legacy_relay_key: PrivateKey | None = None,
) -> dict[str, str] | None:
    """The address, or None when it can no longer be opened (window closed, or STOP)."""
    try:
        if sealed.startswith(LEGACY_MAGIC):
            if legacy_relay_key is None:
                return None
            plain = LEGACY_REPLY_ADDRESS.open(
                legacy_relay_key, sealed, informant_alias=informant_alias
            )
        else:
            key = keystore.get(_name(informant_alias))
            if key is None:
                return None
            plain = REPLY_ADDRESS.open(key, sealed, informant_alias=informant_alias)
    except EnvelopeError:
        return None
    address = json.loads(plain)
    return address if isinstance(address, dict) else None


def destroy(keystore: Keystore, informant_alias: str) -> None:
    """Erase the informant's address everywhere it is copied: delete its key."""
    keystore.delete(_name(informant_alias))
