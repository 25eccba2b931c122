"""Transit keys in short epochs: nothing on a seized disk opens a tip dispatched an hour ago.

Until a tip is dispatched to its unit, workers must read it without any officer: the event as
received, the tip key's transit grant, a file being fetched, a location waiting to re-route, a
reply waiting to be sent. All of these are sealed to the *transit key of the current epoch*.

- An epoch's key pair is made by a worker (:meth:`TransitKeys.rotate`). Its private half goes
  only to the volatile key store (tipline.keystore); its public half, numbered, to the
  ``transit_epochs`` table, where the intake tiers read it (:meth:`TransitKeys.public`).
  Every envelope names its epoch in its header (the key version).
- A new epoch starts every :data:`EPOCH`. An epoch :data:`RETIRE_AFTER` old is retired: what
  is still sealed to it (work not yet done) is opened and sealed again to the current epoch,
  then its private half is deleted. What was done under it — dispatched tips' grants, the
  raw events expanded, the files fetched — may survive in database free pages, WAL files and
  backups, but no key anywhere opens it any more. A tip's grant is thus unreadable at most
  ``RETIRE_AFTER`` plus one worker pass after its dispatch: well inside the hour.
- The key store also forgets each key :data:`KEY_LIFETIME` after it was made, so a key whose
  workers all died is not kept for ever.
- A key store restart loses the live epochs. Nothing acknowledged is lost: the intake tiers
  also seal each event to the receiving unit's key (``inbound_events.sealed_fallback``), and
  :func:`recover_events`, run when a key holder of that unit logs in, seals it again to the
  current epoch, after which it is expanded like any other.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, select, update

from keys import EnvelopeError, PrivateKey, PublicKey, envelope_key_version, generate_keypair
from tipline.config import Config
from tipline.db import write_transaction
from tipline.files import FileStore
from tipline.keystore import Keystore
from tipline.models import (
    Attachment,
    AttachmentState,
    Holder,
    InboundEvent,
    KeyGrant,
    Message,
    MessageKind,
    Subject,
    Tip,
    TransitEpoch,
    key_trust,
    utcnow,
)
from tipline.models.key_trust import certify, transit_subject
from tipline.models.sealed_fields import (
    ATTACHMENT_FETCH,
    INBOUND_EVENT,
    INBOUND_EVENT_FALLBACK,
    KEY_GRANT,
    MESSAGE_FOR_RELAY,
    TIP_REROUTE,
    WEB_UPLOAD,
)

log = logging.getLogger(__name__)

EPOCH = timedelta(minutes=10)  # the default; TIPLINE_TRANSIT_EPOCH_MINUTES (1 to 20)
RETIRE_AFTER = 2 * EPOCH  # for the default epoch; an instance uses twice its own
KEY_LIFETIME = timedelta(minutes=50)  # longer than any epoch's two lengths plus a margin
PUBLIC_CACHE_SECONDS = 15.0

EPOCHS = cast(Table, TransitEpoch.__table__)
EVENTS = cast(Table, InboundEvent.__table__)
GRANTS = cast(Table, KeyGrant.__table__)
ATTACHMENTS = cast(Table, Attachment.__table__)
TIPS = cast(Table, Tip.__table__)
MESSAGES = cast(Table, Message.__table__)


class NoTransitKey(RuntimeError):
    """No transit epoch exists yet: no worker has started. Intake answers 503; Zalo retries."""


class TransitKeyLost(Exception):
    """The epoch's private half is gone (retired, expired, or the key store restarted)."""


def epoch_public(epoch: int, public_key: bytes, certificate: bytes | None) -> PublicKey:
    """An epoch's stored public half, with the certificate it is checked against before
    anything is sealed to it (tipline.models.key_trust)."""
    return (
        PublicKey.from_bytes(public_key)
        .with_version(epoch)
        .claiming(transit_subject(epoch), certificate)
    )


def _name(epoch: int) -> str:
    return f"transit:{epoch}"


class TransitKeys:
    """The transit epochs as one process sees them: public halves from the database, private
    halves from the key store (workers only: web tiers never ask for one)."""

    def __init__(
        self,
        engine: Engine,
        keystore: Callable[[], Keystore],
        data_dir: Any = None,
        epoch: timedelta = EPOCH,
    ) -> None:
        self.engine = engine
        self._keystore = keystore
        self.data_dir = data_dir
        self.epoch = epoch
        self._public: tuple[float, PublicKey] | None = None
        self._lock = threading.Lock()

    @property
    def keystore(self) -> Keystore:
        return self._keystore()

    # --- sealing (every tier) ----------------------------------------------------------

    def public(self) -> PublicKey:
        """The current epoch's public half, versioned; cached for a few seconds."""
        now = time.monotonic()
        with self._lock:
            if self._public is not None and now - self._public[0] < PUBLIC_CACHE_SECONDS:
                return self._public[1]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(EPOCHS.c.id, EPOCHS.c.public_key, EPOCHS.c.key_certificate)
                .where(EPOCHS.c.destroyed_at.is_(None))
                .order_by(EPOCHS.c.id.desc())
                .limit(3)
            ).all()
        # The newest live epoch whose stored key is certified (tipline.models.key_trust): a
        # key swapped in the database is reported and skipped, never sealed to.
        key = next(
            (
                candidate
                for candidate in (
                    epoch_public(row.id, row.public_key, row.key_certificate) for row in rows
                )
                if key_trust.accept(candidate)
            ),
            None,
        )
        if key is None:
            raise NoTransitKey("no transit epoch with a certified key: is a worker running?")
        with self._lock:
            self._public = (now, key)
        return key

    def forget_cached(self) -> None:
        with self._lock:
            self._public = None

    # --- opening (workers) ------------------------------------------------------------

    def private(self, epoch: int) -> PrivateKey:
        value = self.keystore.get(_name(epoch))
        if value is None:
            raise TransitKeyLost(f"transit epoch {epoch} has no key any more")
        return PrivateKey.from_bytes(value)

    def private_for(self, envelope: bytes) -> PrivateKey:
        """The private half of the epoch ``envelope`` names; :class:`TransitKeyLost` if gone."""
        return self.private(_epoch_of(envelope))

    def batch_opener(self) -> Callable[[bytes], PrivateKey]:
        """:meth:`private_for` for one batch: each epoch's key read from the key store once
        (not once per envelope: three reads a tip, issue 15), and dropped with the batch. Not
        kept longer: a key held in a process would outlive its epoch's destruction."""
        keys: dict[int, PrivateKey] = {}

        def private_for(envelope: bytes) -> PrivateKey:
            epoch = _epoch_of(envelope)
            key = keys.get(epoch)
            if key is None:
                key = keys[epoch] = self.private(epoch)
            return key

        return private_for

    # --- the life of epochs (workers) ---------------------------------------------------

    def rotate(self, now: datetime | None = None) -> None:
        """Start an epoch when due (or when the current one's key was lost); retire old ones.

        Run by every worker's relay loop, every few seconds: a read says whether anything is
        due, and only then does the write transaction (exclusive: one at a time) run. Taking
        it on every check stalled the whole pipeline on PostgreSQL several times a second
        (issue 15: every row-locked transaction waits for an exclusive one).
        """
        now = now or utcnow()
        if self._nothing_due(now):
            return
        keystore = self.keystore
        with write_transaction(self.engine) as conn:
            live = conn.execute(
                select(EPOCHS.c.id, EPOCHS.c.created_at)
                .where(EPOCHS.c.destroyed_at.is_(None))
                .order_by(EPOCHS.c.id)
            ).all()
            kept = []
            for row in live:
                if keystore.get(_name(row.id)) is None:
                    log.warning("transit epoch %s: key lost or expired; its events wait", row.id)
                    _mark_destroyed(conn, row.id, now)
                else:
                    kept.append(row)
            current = kept[-1] if kept else None
            if current is not None and not self._certified(conn, current.id):
                # Its stored public half was swapped: start a new epoch now, so that intake
                # moves on; what was sealed to its real key is re-sealed and the key destroyed
                # on the usual schedule below (its private half never depended on the row).
                current = None
            if current is None or current.created_at <= now - self.epoch:
                current = self._start(conn, keystore, now)
            stored = conn.execute(
                select(EPOCHS.c.public_key, EPOCHS.c.key_certificate).where(
                    EPOCHS.c.id == current.id
                )
            ).one()
            current_key = epoch_public(current.id, stored.public_key, stored.key_certificate)
            for row in kept:
                if row.id != current.id and row.created_at <= now - 2 * self.epoch:
                    old = PrivateKey.from_bytes(cast(bytes, keystore.get(_name(row.id))))
                    moved = reseal(conn, row.id, old, current_key, self.data_dir)
                    _mark_destroyed(conn, row.id, now)
                    keystore.delete(_name(row.id))
                    log.info("transit epoch %s destroyed (%s items re-sealed)", row.id, moved)
        self.forget_cached()

    def _nothing_due(self, now: datetime) -> bool:
        """True when :meth:`rotate` would change nothing: every live epoch's key is in the key
        store, the current one is certified and young enough, none is old enough to destroy."""
        with self.engine.connect() as conn:
            live = conn.execute(_LIVE_EPOCHS).all()
            # One round trip, and no private half read out of the key store to check it is there.
            if not live or not self.keystore.holds(*(_name(row.id) for row in live)):
                return False
            current = live[-1]
            if current.created_at <= now - self.epoch or not self._certified(conn, current.id):
                return False
        return not any(
            row.id != current.id and row.created_at <= now - 2 * self.epoch for row in live
        )

    @staticmethod
    def _certified(conn: Connection, epoch: int) -> bool:
        stored = conn.execute(_EPOCH_KEY, {"epoch": epoch}).one()
        return key_trust.accept(epoch_public(epoch, stored.public_key, stored.key_certificate))

    def _start(self, conn: Connection, keystore: Keystore, now: datetime) -> Any:
        newest = conn.execute(select(EPOCHS.c.id).order_by(EPOCHS.c.id.desc()).limit(1)).scalar()
        number = (newest or 0) + 1
        key = generate_keypair()
        # The private half first: an intake tier that sees the row can rely on the key.
        keystore.put(_name(number), key.to_bytes(), KEY_LIFETIME)
        conn.execute(
            EPOCHS.insert().values(
                id=number,
                public_key=key.public_key.to_bytes(),
                key_certificate=certify(transit_subject(number), key.public_key),
                created_at=now,
            )
        )
        return conn.execute(
            select(EPOCHS.c.id, EPOCHS.c.created_at).where(EPOCHS.c.id == number)
        ).one()


def _mark_destroyed(conn: Connection, epoch: int, now: datetime) -> None:
    conn.execute(update(EPOCHS).where(EPOCHS.c.id == epoch).values(destroyed_at=now))


def _sealed_to(envelope: bytes | None, epoch: int) -> bool:
    if envelope is None:
        return False
    try:
        return envelope_key_version(envelope) == epoch
    except EnvelopeError:
        return False


def reseal(
    conn: Connection, epoch: int, old: PrivateKey, new: PublicKey, data_dir: Any = None
) -> int:
    """Seal again to ``new`` everything still sealed to transit epoch ``epoch``; how many."""
    moved = 0
    for row in conn.execute(
        select(EVENTS.c.id, EVENTS.c.dedup_key, EVENTS.c.sealed_event).where(
            EVENTS.c.processed_at.is_(None), EVENTS.c.sealed_event.is_not(None)
        )
    ).all():
        if _sealed_to(row.sealed_event, epoch):
            body = INBOUND_EVENT.open(old, row.sealed_event, dedup_key=row.dedup_key)
            _reseal_uploads(body, old, new, data_dir)
            sealed = INBOUND_EVENT.seal(new, body, dedup_key=row.dedup_key)
            conn.execute(update(EVENTS).where(EVENTS.c.id == row.id).values(sealed_event=sealed))
            moved += 1
    for row in conn.execute(
        select(GRANTS).where(
            GRANTS.c.subject_kind == Subject.TIP, GRANTS.c.holder_kind == Holder.TRANSIT
        )
    ).all():
        if _sealed_to(row.sealed, epoch):
            link = (row.subject_kind, row.subject_id, row.holder_kind, row.holder_id)
            tip_key = KEY_GRANT.open(row.sealed, old, *link)
            sealed = KEY_GRANT.seal(tip_key, new, *link)
            conn.execute(update(GRANTS).where(GRANTS.c.id == row.id).values(sealed=sealed))
            moved += 1
    for row in conn.execute(
        select(ATTACHMENTS.c.id, ATTACHMENTS.c.public_id, ATTACHMENTS.c.sealed_fetch).where(
            ATTACHMENTS.c.state == AttachmentState.PENDING,
            ATTACHMENTS.c.sealed_fetch.is_not(None),
        )
    ).all():
        if _sealed_to(row.sealed_fetch, epoch):
            source = ATTACHMENT_FETCH.open(
                old, row.sealed_fetch, attachment_public_id=row.public_id
            )
            _reseal_upload_ref(source, row.public_id, old, new, data_dir)
            sealed = ATTACHMENT_FETCH.seal(new, source, attachment_public_id=row.public_id)
            conn.execute(
                update(ATTACHMENTS).where(ATTACHMENTS.c.id == row.id).values(sealed_fetch=sealed)
            )
            moved += 1
    for row in conn.execute(
        select(TIPS.c.id, TIPS.c.public_id, TIPS.c.sealed_reroute).where(
            TIPS.c.sealed_reroute.is_not(None)
        )
    ).all():
        if _sealed_to(row.sealed_reroute, epoch):
            place = TIP_REROUTE.open(old, row.sealed_reroute, tip_public_id=row.public_id)
            sealed = TIP_REROUTE.seal(new, place, tip_public_id=row.public_id)
            conn.execute(update(TIPS).where(TIPS.c.id == row.id).values(sealed_reroute=sealed))
            moved += 1
    for row in conn.execute(
        select(MESSAGES.c.id, MESSAGES.c.public_id, MESSAGES.c.sealed_for_relay).where(
            MESSAGES.c.sealed_for_relay.is_not(None),
            # The answer to STOP carries the erased address: it dies with its epoch.
            MESSAGES.c.kind != MessageKind.STOP_CONFIRMATION,
        )
    ).all():
        if _sealed_to(row.sealed_for_relay, epoch):
            text = MESSAGE_FOR_RELAY.open(
                old, row.sealed_for_relay, message_public_id=row.public_id
            )
            sealed = MESSAGE_FOR_RELAY.seal(new, text, message_public_id=row.public_id)
            conn.execute(
                update(MESSAGES).where(MESSAGES.c.id == row.id).values(sealed_for_relay=sealed)
            )
            moved += 1
    return moved


def _reseal_uploads(body: bytes, old: PrivateKey, new: PublicKey, data_dir: Any) -> None:
    """A web report not yet expanded names its uploads (``files``): seal those again too."""
    if data_dir is None:
        return
    data = json.loads(body)
    for item in data.get("files", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and isinstance(item.get("ref"), str):
            _reseal_file(item["ref"], str(item.get("public_id", "")), old, new, data_dir)


def _reseal_upload_ref(
    source: bytes, public_id: str, old: PrivateKey, new: PublicKey, data_dir: Any
) -> None:
    if data_dir is None:
        return
    data = json.loads(source)
    if isinstance(data, dict) and isinstance(data.get("file"), str):
        _reseal_file(data["file"], public_id, old, new, data_dir)


def _reseal_file(ref: str, public_id: str, old: PrivateKey, new: PublicKey, data_dir: Any) -> None:
    store = FileStore.for_data_dir(data_dir)
    try:
        sealed = store.get(ref)
    except (FileNotFoundError, ValueError):
        return
    if envelope_key_version(sealed) == new.version:
        return
    plaintext = WEB_UPLOAD.open(old, sealed, attachment_public_id=public_id)
    store.replace(ref, WEB_UPLOAD.seal(new, plaintext, attachment_public_id=public_id))


def _epoch_of(envelope: bytes) -> int:
    """The transit epoch an envelope is sealed to."""
    try:
        return envelope_key_version(envelope)
    except EnvelopeError as exc:
        raise TransitKeyLost("not a transit envelope") from exc


_LIVE_EPOCHS = (
    select(EPOCHS.c.id, EPOCHS.c.created_at)
    .where(EPOCHS.c.destroyed_at.is_(None))
    .order_by(EPOCHS.c.id)
)
_EPOCH_KEY = select(EPOCHS.c.public_key, EPOCHS.c.key_certificate).where(
    EPOCHS.c.id == bindparam("epoch")
)


@dataclass(frozen=True)
class Sealing:
    """What expansion seals to: the current transit epoch, and the key store that keeps each
    informant's reply-address key (tipline.reply_addresses)."""

    config: Config
    transit: PublicKey
    keystore: Keystore

    @classmethod
    def of(cls, config: Config, transit: TransitKeys, keystore: Keystore) -> Sealing:
        return cls(config, transit.public(), keystore)


# --- when the key store lost an epoch -------------------------------------------------------


def mark_lost(conn: Connection, event_id: int, now: datetime) -> None:
    """Expansion could not open the event: it waits for its unit's key holders."""
    conn.execute(update(EVENTS).where(EVENTS.c.id == event_id).values(transit_lost_at=now))


def recover_events(conn: Connection, transit: TransitKeys, unit_keys: dict[int, PrivateKey]) -> int:
    """Seal the waiting events sealed to the unit key versions given (``unit_keys``: by
    ``unit_keys.id``, a key holder's chain at login) to the current epoch again, so expansion
    takes them up; how many. Events of other units stay."""
    if not unit_keys:
        return 0
    current = transit.public()
    recovered = 0
    rows = conn.execute(
        select(
            EVENTS.c.id,
            EVENTS.c.dedup_key,
            EVENTS.c.sealed_fallback,
            EVENTS.c.fallback_key_id,
        ).where(
            EVENTS.c.processed_at.is_(None),
            EVENTS.c.transit_lost_at.is_not(None),
            EVENTS.c.sealed_fallback.is_not(None),
            EVENTS.c.fallback_key_id.in_(list(unit_keys)),
        )
    ).all()
    for row in rows:
        try:
            body = INBOUND_EVENT_FALLBACK.open(
                unit_keys[row.fallback_key_id], row.sealed_fallback, dedup_key=row.dedup_key
            )
        except EnvelopeError:
            log.warning("event %s: its fallback does not open with its unit's key", row.id)
            continue
        conn.execute(
            update(EVENTS)
            .where(EVENTS.c.id == row.id)
            .values(
                sealed_event=INBOUND_EVENT.seal(current, body, dedup_key=row.dedup_key),
                transit_lost_at=None,
            )
        )
        recovered += 1
    return recovered
