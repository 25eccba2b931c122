"""A message of a tip: inbound from the informant, outbound to them, or an internal note."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.enums import Delivery
from tipline.models.sealed_fields import message_binding

if TYPE_CHECKING:
    from tipline.models.tip import Tip


# The replies still waiting for Zalo, which every worker's sweep reads every 15 s: a partial
# index of those few rows, not a scan of every message ever stored (issue 15). The sweep
# writes the same literal predicate, or neither database could use the index.
QUEUED_PREDICATE = f"delivery = '{Delivery.QUEUED.value}'"


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index(
            "ix_messages_queued",
            "created_at",
            sqlite_where=text(QUEUED_PREDICATE),
            postgresql_where=text(QUEUED_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    # JSON {"text", "attachments"...} sealed to the tip's public key.
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed hash of Zalo's msg_id: a redelivered event is recognised without storing the id.
    dedup_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Outbound only, until delivered: the text sealed to the relay key, because the outbound
    # worker holds no tip key. Erased once the message is sent or finally fails.
    sealed_for_relay: Mapped[bytes | None] = mapped_column(LargeBinary)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(String(200))
    delivery_attempts: Mapped[int] = mapped_column(default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Outbound only: Zalo's id of the message it accepted (``data.message_id`` of the send, or
    # the ``msg_id`` of an OA admin's reply typed on Zalo). Zalo's id of *our* message, not of
    # the informant: kept as is, so an informant's quote of it finds it (0019).
    zalo_message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # Outbound only: why Zalo did not take the message, as a class officers and admins read
    # (a models.SendProblem), beside Zalo's own words in delivery_error.
    delivery_problem: Mapped[str | None] = mapped_column(String(24))

    tip: Mapped[Tip] = relationship(back_populates="messages")

    @property
    def binding(self) -> str:
        return message_binding(self.public_id)
