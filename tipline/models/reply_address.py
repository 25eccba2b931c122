"""How to reach an informant again: their Zalo id, sealed under a key of its own.

That key lives only in the volatile key store, for Zalo's reply window (tipline.reply_addresses);
only the workers reach it, the triage UI never does. "STOP" / "XÓA" from the informant deletes
it, and with it every copy of the sealed address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.sealed_fields import reply_address_binding


class ReplyAddress(Base):
    __tablename__ = "reply_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    informant_alias: Mapped[str] = mapped_column(String(64), unique=True)
    oa_id: Mapped[str] = mapped_column(String(32))
    # {"kind": "user"|"anonymous", "user_id"| "conversation_id"+"anonymous_id"} sealed.
    sealed_address: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def binding(self) -> str:
        return reply_address_binding(self.informant_alias)
