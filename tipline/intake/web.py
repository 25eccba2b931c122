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

from sqlalchemy import select
from sqlalchemy.orm import Session

from keys import (
    KdfCost,
    PrivateKey,
    PublicKey,
    WrongSecret,
    generate_keypair,
    keyed_digest,
    new_passphrase,
    new_token,
    normalise_passphrase,
)
from tipline.config import Config
from tipline.files import FileStore
from tipline.intake.recording import (
    WEB_EVENT,
    fallback_key_for_unit,
    insert_event,
    lane_of,
    new_receipt_code,
)
from tipline.models import (
    Channel,
    Direction,
    InboundEvent,
    Message,
    MessageKind,
    Tip,
    Unit,
    new_public_id,
    utcnow,
)
from tipline.models.sealed_fields import (
    DECOY_WRAP,
    INFORMANT_KEY_WRAP,
    MESSAGE_BODY,
    WEB_UPLOAD,
)
from tipline.outbox import wake_relay
from tipline.runtime import (
    Runtime,
)

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


def _store_uploads(
    config: Config, transit: PublicKey, uploads: Sequence[Upload]
) -> list[dict[str, str]]:
    """Seal each upload to the transit epoch into the file store; what expansion needs."""
    store = FileStore.for_data_dir(config.data_dir)
    stored: list[dict[str, str]] = []
    try:
        for upload in uploads:
            public_id = new_public_id()
            sealed = WEB_UPLOAD.seal(transit, upload.data, attachment_public_id=public_id)
            stored.append({"public_id": public_id, "ref": store.put(sealed), "name": upload.name})
    except BaseException:
        _discard(config, stored)
        raise
    return stored


def _discard(config: Config, stored: list[dict[str, str]]) -> None:
    store = FileStore.for_data_dir(config.data_dir)
    for item in stored:
        store.delete(item["ref"])


def submit_report(
    runtime: Runtime,
    unit_public_id: str,
    text: str,
    location: tuple[float, float] | None = None,
    uploads: Sequence[Upload] = (),
) -> Receipt:
    """Store a web report for expansion; return what the informant is shown once.

    Files are written (sealed) before the report row: a crash in between leaves ciphertext
    nobody refers to, never a report whose files are missing.
    """
    config = runtime.config
    transit = runtime.transit.public()
    receipt_code = new_receipt_code()
    passphrase = new_passphrase()
    tip_key = generate_keypair()
    wrapped = INFORMANT_KEY_WRAP.wrap(
        tip_key, passphrase, config.kdf_cost, receipt_code=receipt_code
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
    stored = _store_uploads(config, transit, uploads)
    if stored:
        body["files"] = stored
    key = web_report_key(config, receipt_code)
    encoded = json.dumps(body, ensure_ascii=False).encode()
    try:
        with runtime.engine.connect() as conn:  # read, then a transaction that only writes
            unit_id = conn.execute(
                select(Unit.id).where(Unit.public_id == unit_public_id)
            ).scalar_one_or_none()
            fallback = fallback_key_for_unit(conn, unit_id) if unit_id is not None else None
        with runtime.engine.begin() as conn:
            # A report opens a tip of its own, after no other: any lane does.
            insert_event(conn, key, encoded, transit, fallback, lane=lane_of(key))
    except BaseException:
        _discard(config, stored)
        raise
    wake_relay(runtime.redis)
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
    return DECOY_WRAP.wrap(generate_keypair(), new_token(32), cost)


def find_web_tip(session: Session, receipt_code: str) -> Tip | None:
    return session.scalars(
        select(Tip).where(
            Tip.receipt_code == receipt_code.strip().upper(), Tip.channel == Channel.WEB
        )
    ).one_or_none()


def refuse_unknown(passphrase: str, cost: KdfCost) -> NoReturn:
    """Raise :class:`WrongSecret` after one Argon2id run, as a wrong passphrase would."""
    DECOY_WRAP.unwrap(_decoy_wrap(cost), normalise_passphrase(passphrase))
    raise WrongSecret("no such tip")  # not reached: the decoy opens for no passphrase


def open_web_tip(tip: Tip, passphrase: str, cost: KdfCost) -> PrivateKey:
    """The tip key, for the holder of the passphrase; :class:`WrongSecret` otherwise.

    A shredded tip (no key) costs one Argon2id run all the same.
    """
    if tip.informant_key is None:
        refuse_unknown(passphrase, cost)
    return INFORMANT_KEY_WRAP.unwrap(
        tip.informant_key, normalise_passphrase(passphrase), receipt_code=tip.receipt_code
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
            MESSAGE_BODY.open(tip_key, message.sealed_body, message_public_id=message.public_id)
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
    message.sealed_body = MESSAGE_BODY.seal(
        tip.public,
        json.dumps({"text": text, "event": "web_answer"}, ensure_ascii=False).encode(),
        message_public_id=message.public_id,
    )
    tip.last_inbound_at = now
    session.add(message)
    return message
