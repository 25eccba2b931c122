"""The web form for people without Zalo (/bao-tin, /tra-cuu): the storage side.

A report takes the same path as a Zalo event: one row sealed to the transit key
(``inbound_events``), expanded by the worker into a tip (channel "web") and dispatched. The
form handler makes what only it can make: the tip key pair, wrapped under Argon2id of a
passphrase shown once to the informant, and the receipt code. Neither the passphrase nor
anything about the sender's connection (no IP address) is stored.

Files go the way of Zalo attachments, minus the download: the form handler seals each file,
as uploaded, to the transit key into the file store (plaintext never reaches disk: the request
keeps uploads in memory, ``tipline.app.InMemoryRequest``); expansion makes a pending attachment
and the media worker cleans it, seals it to the tip and erases the upload.

Officers' replies to a web tip are not sent anywhere (``Delivery.PORTAL``): the informant
reads them at /tra-cuu, where the passphrase unwraps the tip key.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from keys import (
    KdfCost,
    PrivateKey,
    WrongSecret,
    generate_keypair,
    keyed_digest,
    new_passphrase,
    new_token,
    normalise_passphrase,
    open_sealed,
    seal,
    unwrap_with_secret,
    wrap_with_secret,
)
from tipline.config import Config
from tipline.files import FileStore
from tipline.intake.store import (
    _INSERT_EVENT,
    EVENT_PURPOSE,
    UPLOAD_PURPOSE,
    WEB_EVENT,
    new_receipt_code,
    upload_binding,
)
from tipline.models import (
    Channel,
    Direction,
    InboundEvent,
    Message,
    MessageKind,
    Tip,
    new_public_id,
    utcnow,
)
from tipline.outgoing import BODY_PURPOSE

MAX_TEXT = 20_000
MAX_FILES = 5
MAX_FILE_BYTES = 10 * 1024 * 1024  # the whole request is capped too (MAX_CONTENT_LENGTH)


@dataclass(frozen=True)
class Receipt:
    receipt_code: str
    passphrase: str


@dataclass(frozen=True)
class Upload:
    """A file from the form, as the browser sent it (cleaned later by the media worker)."""

    name: str
    data: bytes


def _store_uploads(config: Config, uploads: Sequence[Upload]) -> list[dict[str, str]]:
    """Seal each upload to the transit key into the file store; what expansion needs of each."""
    store = FileStore.for_data_dir(config.data_dir)
    stored: list[dict[str, str]] = []
    try:
        for upload in uploads:
            public_id = new_public_id()
            sealed = seal(
                config.secrets.transit_public,
                upload.data,
                purpose=UPLOAD_PURPOSE,
                binding=upload_binding(public_id),
            )
            stored.append({"public_id": public_id, "ref": store.put(sealed), "name": upload.name})
    except BaseException:
        _discard(config, stored)
        raise
    return stored


def _discard(config: Config, stored: list[dict[str, str]]) -> None:
    store = FileStore.for_data_dir(config.data_dir)
    for item in stored:
        store.delete(item["ref"])


def informant_key_binding(receipt_code: str) -> str:
    return f"informant_key:{receipt_code}"


def submit_report(
    engine: Engine,
    config: Config,
    unit_public_id: str,
    text: str,
    location: tuple[float, float] | None = None,
    uploads: Sequence[Upload] = (),
) -> Receipt:
    """Store a web report for expansion; return what the informant is shown once.

    Files are written (sealed) before the report row: a crash in between leaves ciphertext
    nobody refers to, never a report whose files are missing.
    """
    receipt_code = new_receipt_code()
    passphrase = new_passphrase()
    tip_key = generate_keypair()
    wrapped = wrap_with_secret(
        tip_key,
        passphrase,
        cost=config.kdf_cost,
        binding=informant_key_binding(receipt_code),
    )
    body: dict[str, object] = {
        "event_name": WEB_EVENT,
        "unit": unit_public_id,
        "text": text,
        "receipt_code": receipt_code,
        "tip_key": base64.b64encode(tip_key.to_bytes()).decode(),
        "informant_key": base64.b64encode(wrapped).decode(),
    }
    if location is not None:
        body["location"] = {"lat": location[0], "lon": location[1]}
    stored = _store_uploads(config, uploads)
    if stored:
        body["files"] = stored
    key = web_report_key(config, receipt_code)
    sealed = seal(
        config.secrets.transit_public,
        json.dumps(body, ensure_ascii=False).encode(),
        purpose=EVENT_PURPOSE,
        binding=InboundEvent.binding_for(key),
    )
    try:
        with engine.begin() as conn:
            statement = _INSERT_EVENT.get(conn.dialect.name, _INSERT_EVENT["default"])
            conn.execute(
                statement, {"dedup_key": key, "received_at": utcnow(), "sealed_event": sealed}
            )
    except BaseException:
        _discard(config, stored)
        raise
    return Receipt(receipt_code, passphrase)


def web_report_key(config: Config, receipt_code: str) -> str:
    """The stored report's dedup key: lets /tra-cuu tell "not yet expanded" from "unknown"."""
    return keyed_digest(config.secrets.alias_key, "web_report", receipt_code.strip().upper())


def report_pending(session: Session, config: Config, receipt_code: str) -> bool:
    """True while the report is stored but the worker has not made it a tip yet (seconds)."""
    key = web_report_key(config, receipt_code)
    return (
        session.scalar(
            select(InboundEvent.id).where(
                InboundEvent.dedup_key == key, InboundEvent.processed_at.is_(None)
            )
        )
        is not None
    )


@functools.cache
def _decoy_wrap(cost: KdfCost) -> bytes:
    """A wrap nobody can open, tried for an unknown code: the answer then takes as long as for
    a known code with a wrong passphrase, so timing does not tell which codes exist."""
    return wrap_with_secret(generate_keypair(), new_token(32), cost=cost, binding="decoy")


def find_web_tip(session: Session, receipt_code: str) -> Tip | None:
    return session.scalars(
        select(Tip).where(
            Tip.receipt_code == receipt_code.strip().upper(), Tip.channel == Channel.WEB
        )
    ).one_or_none()


def refuse_unknown(passphrase: str, cost: KdfCost) -> NoReturn:
    """Raise :class:`WrongSecret` after one Argon2id run, as a wrong passphrase would."""
    unwrap_with_secret(_decoy_wrap(cost), normalise_passphrase(passphrase), binding="decoy")
    raise WrongSecret("no such tip")  # not reached: the decoy opens for no passphrase


def open_web_tip(tip: Tip, passphrase: str, cost: KdfCost) -> PrivateKey:
    """The tip key, for the holder of the passphrase; :class:`WrongSecret` otherwise.

    A shredded tip (no key) costs one Argon2id run all the same.
    """
    if tip.informant_key is None:
        refuse_unknown(passphrase, cost)
    return unwrap_with_secret(
        tip.informant_key,
        normalise_passphrase(passphrase),
        binding=informant_key_binding(tip.receipt_code),
    )


@dataclass(frozen=True)
class Entry:
    direction: str
    text: str
    at: object


def conversation(tip: Tip, tip_key: PrivateKey) -> list[Entry]:
    """The informant's messages and the officers' replies; internal notes never."""
    entries = []
    for message in tip.messages:
        if message.direction not in (Direction.INBOUND, Direction.OUTBOUND):
            continue
        body = json.loads(
            open_sealed(tip_key, message.sealed_body, purpose=BODY_PURPOSE, binding=message.binding)
        )
        text = body.get("text") if isinstance(body, dict) else None
        entries.append(
            Entry(message.direction, text if isinstance(text, str) else "", message.created_at)
        )
    return entries


def append_answer(session: Session, tip: Tip, text: str) -> Message:
    """The informant's follow-up, sealed to the tip's public key (no key needed to add)."""
    now = utcnow()
    message = Message(
        public_id=new_public_id(),
        tip=tip,
        direction=Direction.INBOUND,
        kind=MessageKind.TEXT,
        sealed_body=b"",
        created_at=now,
        delivery_attempts=0,
    )
    message.sealed_body = seal(
        tip.public,
        json.dumps({"text": text, "event": "web_answer"}, ensure_ascii=False).encode(),
        purpose=BODY_PURPOSE,
        binding=message.binding,
    )
    tip.last_inbound_at = now
    session.add(message)
    return message
