"""A notice to a staff member or a unit: an urgent tip waiting, an escalation, a held tip.

Notices carry public ids and fixed kinds only, never tip content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    tip_id: Mapped[int | None] = mapped_column(ForeignKey("tips.id"))
    kind: Mapped[str] = mapped_column(String(32))  # a NotificationKind
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
