"""A transit epoch: the public half of a short-lived transit key, and when it was destroyed.

The private half is only in the volatile key store (tipline.keystore, tipline.transit); this
row tells the intake tiers what to seal to, and the workers what to re-seal and destroy.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from keys import PublicKey
from tipline.models.base import Base, UTCDateTime, utcnow
from tipline.models.key_trust import transit_subject


class TransitEpoch(Base):
    __tablename__ = "transit_epochs"

    # The epoch number: the key version every envelope sealed to it names in its header.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # keys.certify: the public key signed with this row's identity (tipline.models.key_trust).
    key_certificate: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Destroyed (its private half deleted), or found lost (the key store restarted).
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def public(self) -> PublicKey:
        return (
            PublicKey.from_bytes(self.public_key)
            .with_version(self.id)
            .claiming(transit_subject(self.id), self.key_certificate)
        )
