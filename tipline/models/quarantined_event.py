"""A validly signed Zalo event that intake could not read, kept instead of refused.

Zalo retries any answer but 200 (30 s … 1 h) and then cancels the app's webhook subscription
for every OA (research/zalo.md §8.2), so the webhook answers 200 to everything Zalo signed.
What it cannot read is kept here, never as content in plaintext:

- sealed to the current key version of the unit that owns the receiving OA, when that OA is
  one this install serves (its key holders can open it; a transit epoch would destroy it
  within the hour, before anyone had looked);
- otherwise only a keyed digest of the bytes and their size.

Admins see the metadata (time, OA, reason, size), never the content. Retention deletes a row
after :data:`tipline.retention.QUARANTINE_KEPT`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow


class QuarantinedEvent(Base):
    __tablename__ = "quarantined_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # HMAC(alias key, the raw body): Zalo's retry of the same bytes is kept once.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Only an OA id this install serves (official_accounts), never another id of the body.
    oa_id: Mapped[str | None] = mapped_column(String(32))
    # Zalo's event name when it is a plain lower-case word, else None.
    event_name: Mapped[str | None] = mapped_column(String(48))
    reason: Mapped[str] = mapped_column(String(32))  # a models.QuarantineReason
    size: Mapped[int]
    # The raw body sealed to unit_key_id (QUARANTINED_EVENT); None for an unknown OA.
    sealed_event: Mapped[bytes | None] = mapped_column(LargeBinary)
    unit_key_id: Mapped[int | None] = mapped_column(ForeignKey("unit_keys.id"))
