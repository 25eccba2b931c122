"""The transactional outbox: a job is written in the same commit as the data it concerns.

A relay drains unsent rows into RQ in batches, so a tip the webhook acknowledged always has a
job, even when Redis was down at the time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class OutboxEntry(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "enqueued_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    # Dotted path of the job function and its one argument: a public id, never content.
    job: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
