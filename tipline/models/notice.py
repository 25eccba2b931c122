"""A one-off answer to an informant who has no tip: "tình trạng" from someone with none.

A command is never a tip (tipline.informant), so its answer cannot be a message of a tip. The
row holds only what the outbound worker needs: the OA and, sealed to the current transit epoch
(NOTICE_FOR_RELAY), the address and the text. It is deleted once sent or given up, and stops
opening anyway when its epoch is destroyed (tipline.transit), so an undelivered notice cannot
outlive the hour. No officer sees it; nothing links it to anyone's tips.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class Notice(Base):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    oa_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    # JSON {"to": address, "text": ...} sealed to a transit epoch (NOTICE_FOR_RELAY).
    sealed_for_relay: Mapped[bytes] = mapped_column(LargeBinary)
