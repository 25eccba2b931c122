"""An auditor's review of an anomaly flag: who looked, when, and what they concluded.

A flag is computed from the chain each time (tipline.audit.query), so a review is keyed by the
flag's kind and its first event's public id: the same pattern found again is the same flag.
The note is the auditor's own words about staff activity (no tip content; the form says so);
the review itself is an ANOMALY_REVIEW event in the chain, so a note cannot appear unseen.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class AnomalyReview(Base):
    __tablename__ = "anomaly_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(96), unique=True)  # "<kind>:<first event id>"
    note: Mapped[str] = mapped_column(String(1000))
    reviewer_id: Mapped[str] = mapped_column(String(32))  # the auditor's public id
    reviewer_name: Mapped[str] = mapped_column(String(200))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
