"""Retention (issue 6): closed tips are kept for a period per final status, then
crypto-shredded.

Shredding deletes every key grant of the tip (so no chain leads to its private key any more)
and the sealed content itself: message bodies, attachment sources and files, routing notes,
the web informant's wrapped key. What stays is the plaintext metadata (status, unit,
category, dates) for statistics, and one audit event saying it happened. Before that the
unit is warned once, ``Config.retention_warn_days`` ahead.

The same pass thins out the record of processed inbound events (:func:`purge_inbound_events`):
their receive times and tips would otherwise outlive the tips' shredding; and it deletes
quarantined events (signed Zalo events intake could not read) after :data:`QUARANTINE_KEPT`,
and notices never sent after :data:`NOTICE_KEPT`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import batched

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from tipline.audit import actions, audited_session, record
from tipline.config import Config
from tipline.files import FileStore
from tipline.models import (
    Attachment,
    InboundEvent,
    KeyGrant,
    Message,
    Notice,
    Notification,
    NotificationKind,
    QuarantinedEvent,
    ReplyAddress,
    Subject,
    Tip,
)

BATCH = 200
# Zalo redelivers an unanswered webhook after 30 s, 5 min, 15 min, 30 min and 1 h: within two
# hours even if each delay counts from the attempt before. Until then a processed event keeps
# its times and its tip (what an operator looking into a redelivery needs) ...
REDELIVERY_HORIZON = timedelta(hours=2)
# ... then only its dedup key, which still answers a late redelivery as a duplicate, and the
# day it was processed; after this long no redelivery can come and the row is deleted.
FORGET_EVENTS_AFTER = timedelta(days=7)
# A quarantined event (tipline.models.quarantined_event) may hold a Zalo id sealed to a unit
# key: kept long enough for an admin to notice and a key holder to look, not for good.
QUARANTINE_KEPT = timedelta(days=30)


def expires_at(config: Config, tip: Tip) -> datetime | None:
    """When ``tip`` is due to be shredded; None while it is open or kept indefinitely."""
    period = config.retention_period(tip.status)
    if tip.closed_at is None or period is None or tip.is_open:
        return None
    return tip.closed_at + period


def _closed_tips(
    session: Session, config: Config, before: datetime, *, lock: bool = False
) -> list[Tip]:
    """Closed, unshredded tips whose period ends before ``before`` (per status, in SQL: a pass
    no longer loads every closed tip). ``lock``: their rows locked, those another transaction
    holds (an officer at work on one) skipped until the next pass."""
    periods = [(status, timedelta(days=days)) for status, days in config.retention_days]
    if not periods:
        return []
    query = (
        select(Tip)
        .where(
            Tip.shredded_at.is_(None),
            Tip.closed_at.is_not(None),
            or_(
                *[
                    and_(Tip.status == status, Tip.closed_at < before - period)
                    for status, period in periods
                ]
            ),
        )
        .order_by(Tip.closed_at, Tip.id)
    )
    if lock:
        query = query.with_for_update(skip_locked=True, key_share=True)
    return list(session.scalars(query))


def warn_expiring(session: Session, config: Config, now: datetime) -> int:
    """One notice to the unit for each tip entering its warning window; once per tip."""
    window = timedelta(days=config.retention_warn_days)
    warned = 0
    for tip in _closed_tips(session, config, now + window, lock=True):
        end = expires_at(config, tip)
        if end is None or tip.retention_warned_at is not None or end - window > now:
            continue
        if end <= now:
            continue  # already due: shredded next, a warning would come too late
        tip.retention_warned_at = now
        session.add(
            Notification(
                unit_id=tip.unit_id, tip_id=tip.id, kind=NotificationKind.RETENTION_WARNING
            )
        )
        warned += 1
    session.flush()
    return warned


def shred_tip(session: Session, config: Config, tip: Tip, now: datetime) -> None:
    """Delete the tip's grants and sealed content; keep its plaintext metadata; audit it."""
    session.execute(
        delete(KeyGrant).where(KeyGrant.subject_kind == Subject.TIP, KeyGrant.subject_id == tip.id)
    )
    store = FileStore.for_data_dir(config.data_dir)
    for attachment in session.scalars(select(Attachment).where(Attachment.tip_id == tip.id)):
        if attachment.storage_ref is not None:
            store.delete(attachment.storage_ref)
        attachment.storage_ref = None
        attachment.sealed_source = b""
        attachment.sealed_fetch = None
        attachment.sealed_facts = None
    for message in session.scalars(select(Message).where(Message.tip_id == tip.id)):
        message.sealed_body = b""
        message.sealed_for_relay = None
    tip.sealed_routing = None
    tip.sealed_reroute = None
    tip.informant_key = None
    tip.shredded_at = now
    _erase_address_if_unused(session, tip, now)
    record(
        session,
        action=actions.TIP_SHREDDED,
        object_id=tip.public_id,
        unit=tip.unit,
        detail={"status": tip.status, "reason": "retention"},
    )


def _erase_address_if_unused(session: Session, tip: Tip, now: datetime) -> None:
    """The informant's reply address (their sealed Zalo id) goes with their last kept tip.

    One address serves all of an informant's tips; while another tip is kept, officers may
    still answer on it. Writing to the OA again makes a new one, as after "STOP".
    """
    if tip.reply_address_id is None:
        return
    # Locked first: an informant writing again at this moment re-seals the same row
    # (tipline.intake.expansion); after the lock, their new tip is seen below.
    address = session.scalars(
        select(ReplyAddress)
        .where(ReplyAddress.id == tip.reply_address_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    if address is None or address.sealed_address is None:
        return
    others = session.scalars(
        select(Tip.id).where(
            Tip.reply_address_id == address.id, Tip.id != tip.id, Tip.shredded_at.is_(None)
        )
    ).first()
    if others is None:
        address.sealed_address = None
        address.destroyed_at = now


def shred_expired(session: Session, config: Config, now: datetime) -> int:
    """Shred every closed tip whose ``closed_at`` + its status's period has passed."""
    shredded = 0
    for tip in _closed_tips(session, config, now, lock=True):
        end = expires_at(config, tip)
        if end is None or end >= now:
            continue
        shred_tip(session, config, tip, now)
        shredded += 1
    session.flush()
    return shredded


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def purge_inbound_events(session: Session, now: datetime) -> tuple[int, int]:
    """Thin out processed inbound events; (stripped, deleted).

    Past :data:`REDELIVERY_HORIZON` a processed event keeps its dedup key and, instead of its
    processing time, midnight (UTC) of that day: ``processed_at`` must stay set, since an
    event without one is waiting for expansion. Its receive time, its tip and its OA's lane
    are erased.
    Past :data:`FORGET_EVENTS_AFTER` the row is deleted. An event not processed yet is never
    touched: it is the only copy of what Zalo or the web form was told was received.
    """
    due = session.execute(
        select(InboundEvent.id, InboundEvent.processed_at).where(
            InboundEvent.processed_at < now - REDELIVERY_HORIZON,
            (InboundEvent.received_at.is_not(None)) | (InboundEvent.tip_public_id.is_not(None)),
        )
    ).all()
    by_day: dict[datetime, list[int]] = defaultdict(list)
    for event_id, processed_at in due:
        if processed_at is not None:  # always, by the query
            by_day[_day(processed_at)].append(event_id)
    for day, ids in by_day.items():
        for chunk in batched(ids, 500):
            session.execute(
                update(InboundEvent)
                .where(InboundEvent.id.in_(chunk))
                .values(received_at=None, tip_public_id=None, processed_at=day, lane=0)
            )
    deleted = session.execute(
        delete(InboundEvent).where(InboundEvent.processed_at < now - FORGET_EVENTS_AFTER)
    ).rowcount  # type: ignore[attr-defined]  # a DELETE's result is a CursorResult
    return len(due), int(deleted)


def purge_quarantine(session: Session, now: datetime) -> int:
    """Delete quarantined events received more than :data:`QUARANTINE_KEPT` ago; how many."""
    result = session.execute(
        delete(QuarantinedEvent).where(QuarantinedEvent.received_at < now - QUARANTINE_KEPT)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]  # a DELETE's CursorResult


NOTICE_KEPT = timedelta(days=1)  # longer than RQ's retries of a notice (tipline.outbox.JOBS)


def purge_notices(session: Session, now: datetime) -> int:
    """Delete notices (one-off answers to informants with no tip) not sent after
    :data:`NOTICE_KEPT`: their job was lost; how many."""
    result = session.execute(delete(Notice).where(Notice.created_at < now - NOTICE_KEPT))
    return int(result.rowcount)  # type: ignore[attr-defined]  # a DELETE's CursorResult


def retention_pass(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> tuple[int, int]:
    """Warn, then shred, each in its own transaction (the worker's periodic pass); then thin
    out processed inbound events. How many tips were warned about and shredded."""
    # Row-locked transactions (tipline.db), the pipeline's and officers' work going on beside
    # them: under the exclusive lock, every worker waited for the whole pass (issue 15).
    with audited_session(sessions) as session:
        warned = warn_expiring(session, config, now)
    with audited_session(sessions) as session:
        shredded = shred_expired(session, config, now)
    with audited_session(sessions) as session:
        purge_inbound_events(session, now)
        purge_quarantine(session, now)
        purge_notices(session, now)
    return warned, shredded
