"""An account waiting for a unit key: granted only when a key holder of the unit approves.

Admins create, reset and move accounts but hold no key (DESIGN.md): the unit key reaches an
account only through a key holder of that unit or above, who sees who the account is, who
asked for it and when, and approves or rejects (tipline.grants). Never automatically.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.enums import GrantState

if TYPE_CHECKING:
    from tipline.models.officer import Officer
    from tipline.models.unit import Unit


class GrantRequest(Base):
    __tablename__ = "grant_requests"
    __table_args__ = (Index("ix_grant_requests_state_unit", "state", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    reason: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=GrantState.PENDING)
    # The admin (or command line: NULL) whose action made the account need the key.
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    officer: Mapped[Officer] = relationship(foreign_keys=[officer_id])
    unit: Mapped[Unit] = relationship()
    requested_by: Mapped[Officer | None] = relationship(foreign_keys=[requested_by_id])
    decided_by: Mapped[Officer | None] = relationship(foreign_keys=[decided_by_id])
