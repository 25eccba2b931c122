"""One audit event: who did what to which object, when, with what outcome; never content.

Rows are append-only (triggers in migration 0003_audit) and chained: ``hash`` covers the
previous event's hash and this event's canonical form (tipline.audit.chain), so any edit,
deletion, insertion or reordering is found by ``tipline audit verify``.

Columns hold public ids, codes and fixed words only: no tip content, no informant id, no
foreign keys (an event must outlive the account or unit it names, and must never block or be
touched by a cascade).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.enums import Outcome


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor_at", "actor_id", "at"),
        Index("ix_audit_events_unit_at", "unit_code", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
        Index("ix_audit_events_object", "object_id"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Position in the chain, 1, 2, 3, … without gaps: a missing number is a deleted event.
    seq: Mapped[int] = mapped_column(unique=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The acting officer's public id and username; both NULL for the system (jobs, intake).
    actor_id: Mapped[str | None] = mapped_column(String(32))
    actor_name: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    # The public id of what was acted on: a tip, an account, a unit, an OA id.
    object_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default=Outcome.OK)
    # Staff only; never recorded for informants or the system.
    client_address: Mapped[str | None] = mapped_column(String(64))
    # Compact JSON with sorted keys of fixed, non-content strings (a status, a unit code).
    detail_json: Mapped[str | None] = mapped_column(String(1000))
    # chain_hash(previous event's hash, canonical(this event)), 64 hex characters.
    hash: Mapped[str] = mapped_column(String(64))

    @property
    def detail(self) -> dict[str, str]:
        return dict(json.loads(self.detail_json)) if self.detail_json else {}

    @property
    def actor_label(self) -> str:
        """What the auditor UI shows in the "who" column."""
        return self.actor_name or "system"
