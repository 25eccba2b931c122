"""A verified Zalo event as the webhook stored it: sealed to the transit key, one row.

The webhook's whole write is this row, so it can answer Zalo fast and still lose nothing: the
row is both the sealed tip content and the durable job. The worker expands it into a tip and
its messages (re-sealed to the tip's key) and then erases the sealed event; the row stays, as
the record that this ``msg_id`` was seen, so a redelivery is recognised.

Once Zalo has stopped redelivering, retention (:func:`tipline.retention.purge_inbound_events`)
erases the row's receive time and tip, keeping the dedup key and the day it was processed; a
week later it deletes the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class InboundEvent(Base):
    __tablename__ = "inbound_events"
    __table_args__ = (Index("ix_inbound_events_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Keyed hash of (OA id, Zalo msg_id): never Zalo's id itself.
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    # None once retention has erased it (0017_inbound_purge).
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    # Sealed to a transit epoch (its number is in the envelope's header).
    sealed_event: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The same event sealed to the receiving unit's current key version: if the epoch's key is
    # lost (the key store restarted), that unit's key holders bring it back (tipline.transit).
    sealed_fallback: Mapped[bytes | None] = mapped_column(LargeBinary)
    fallback_key_id: Mapped[int | None] = mapped_column(ForeignKey("unit_keys.id"))
    # When expansion found the epoch's key gone: the event waits for the fallback.
    transit_lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None while the event waits for expansion (the worker's queue). After the redelivery
    # horizon: midnight (UTC) of the day it was processed, never None again.
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tip_public_id: Mapped[str | None] = mapped_column(String(32))
    # Expansion raised on it (a damaged or wrongly sealed event, a bug): how many times, and the
    # exception's class name (never its message, which may quote the event). At
    # EXPAND_ATTEMPTS it is set aside (``expand_failed_at``) until an admin has it tried again
    # (/admin/zalo-events); it never holds up the events after it (tipline.intake.expansion).
    expand_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expand_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expand_error: Mapped[str | None] = mapped_column(String(64))
    # Its OA's expansion lane (tipline.intake.recording.lane_of, 0032_expansion_lanes): a
    # number below EXPAND_LANES from the OA's public id, nothing of the informant's.
    lane: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
