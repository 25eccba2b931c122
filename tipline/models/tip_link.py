"""Two tips an officer linked as related (issue 18): the same suspect, vehicle or place.

One row per pair, the smaller tip id first, so a pair is linked once whichever end it was
linked from; both tip pages show it. Ids, who and when only, never content. Like
``tips.duplicate_of_id``, a link says at rest that two tips concern the same thing; an officer
decided it, nothing derives it automatically (triage.related matches in memory and stores
nothing), and the audit trail records it anyway (``tip_link`` / ``tip_unlink``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class TipLink(Base):
    __tablename__ = "tip_links"
    __table_args__ = (
        UniqueConstraint("first_tip_id", "second_tip_id"),
        CheckConstraint("first_tip_id < second_tip_id", name="ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    first_tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"))
    second_tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
