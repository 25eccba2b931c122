"""A police unit: a node of the province → (district) → commune tree."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow

if TYPE_CHECKING:
    from tipline.models.official_account import OfficialAccount
    from tipline.models.unit_key import UnitKey


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # Namespaced official code (CONTRACT.md): "v2025:32134", "v2024:969", or a hand-made code.
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Unit]] = relationship(back_populates="parent")
    official_accounts: Mapped[list[OfficialAccount]] = relationship(
        back_populates="unit", order_by="OfficialAccount.id"
    )
    keys: Mapped[list[UnitKey]] = relationship(back_populates="unit", order_by="UnitKey.version")

    @property
    def current_key(self) -> UnitKey | None:
        live = [key for key in self.keys if key.retired_at is None]
        return live[-1] if live else None
