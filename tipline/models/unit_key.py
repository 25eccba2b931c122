"""One version of a unit's key pair. Only the public half is stored in plaintext."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, LargeBinary, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keys import PublicKey
from tipline.models.base import Base, UTCDateTime, utcnow
from tipline.models.key_trust import unit_key_subject

if TYPE_CHECKING:
    from tipline.models.unit import Unit


class UnitKey(Base):
    __tablename__ = "unit_keys"
    __table_args__ = (UniqueConstraint("unit_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    version: Mapped[int]
    public_key: Mapped[bytes] = mapped_column(LargeBinary(64))
    # keys.certify: the public key signed with this row's identity (tipline.models.key_trust).
    key_certificate: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Retired versions still open old grants; new tips are sealed to the newest live version.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    unit: Mapped[Unit] = relationship(back_populates="keys")

    @property
    def public(self) -> PublicKey:
        return PublicKey.from_bytes(self.public_key).claiming(
            unit_key_subject(self.id, self.unit_id, self.version), self.key_certificate
        )
