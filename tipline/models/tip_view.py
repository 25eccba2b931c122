"""When an officer last looked at a tip: what the inbox's unread markers compare with.

One row per officer and tip, moved forward each time the officer opens the tip. A tip is
unread for an officer when it arrived in its unit, or its informant wrote, after that time.
Ids and a time only, never content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class TipView(Base):
    __tablename__ = "tip_views"
    __table_args__ = (UniqueConstraint("officer_id", "tip_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"), index=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
