"""One link of a key chain: a subject's private key sealed to a holder's public key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, utcnow
from tipline.models.sealed_fields import grant_binding


class KeyGrant(Base):
    __tablename__ = "key_grants"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject_id", "holder_kind", "holder_id"),
        Index("ix_key_grants_holder", "holder_kind", "holder_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int]
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_id: Mapped[int]
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def link(self) -> tuple[str, int, str, int]:
        """Subject kind and id, holder kind and id: what ``KEY_GRANT`` binds the grant to."""
        return (self.subject_kind, self.subject_id, self.holder_kind, self.holder_id)

    @property
    def binding(self) -> str:
        return grant_binding(*self.link)
