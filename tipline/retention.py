"""Retention (issue 6): closed tips are kept for a period per final status, then
crypto-shredded.

Shredding deletes every key grant of the tip (so no chain leads to its private key any more)
and the sealed content itself: message bodies, attachment sources and files, routing notes,
the web informant's wrapped key. What stays is the plaintext metadata (status, unit,
category, dates) for statistics, and one audit event saying it happened. Before that the
unit is warned once, ``Config.retention_warn_days`` ahead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tipline.audit import actions, record
from tipline.config import Config
from tipline.db import write_session
from tipline.files import FileStore
from tipline.models import (
    Attachment,
    KeyGrant,
    Message,
    Notification,
    NotificationKind,
    Subject,
    Tip,
)

BATCH = 200


def expires_at(config: Config, tip: Tip) -> datetime | None:
    """When ``tip`` is due to be shredded; None while it is open or kept indefinitely."""
    period = config.retention_period(tip.status)
    if tip.closed_at is None or period is None or tip.is_open:
        return None
    return tip.closed_at + period


def _closed_tips(session: Session, config: Config) -> list[Tip]:
    statuses = [status for status, _days in config.retention_days]
    return list(
        session.scalars(
            select(Tip)
            .where(
                Tip.status.in_(statuses),
                Tip.closed_at.is_not(None),
                Tip.shredded_at.is_(None),
            )
            .order_by(Tip.closed_at, Tip.id)
        )
    )


def warn_expiring(session: Session, config: Config, now: datetime) -> int:
    """One notice to the unit for each tip entering its warning window; once per tip."""
    window = timedelta(days=config.retention_warn_days)
    warned = 0
    for tip in _closed_tips(session, config):
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
    address = tip.reply_address
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
    for tip in _closed_tips(session, config):
        end = expires_at(config, tip)
        if end is None or end >= now:
            continue
        shred_tip(session, config, tip, now)
        shredded += 1
    session.flush()
    return shredded


def retention_pass(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> tuple[int, int]:
    """Warn, then shred, each in its own transaction (the worker's periodic pass)."""
    with write_session(sessions) as session:
        warned = warn_expiring(session, config, now)
    with write_session(sessions) as session:
        shredded = shred_expired(session, config, now)
    return warned, shredded
