"""An attachment of a message: where to fetch it (sealed) and, once fetched, its sealed bytes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tipline.models.base import Base, UTCDateTime, new_public_id, utcnow
from tipline.models.enums import AttachmentState

if TYPE_CHECKING:
    from tipline.models.message import Message


# Attachments the media worker has not fetched yet, which every worker's sweep reads: a partial
# index of those (issue 15), with the same literal predicate in the sweep.
PENDING_PREDICATE = f"state = '{AttachmentState.PENDING.value}'"


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (
        Index(
            "ix_attachments_pending",
            "created_at",
            sqlite_where=text(PENDING_PREDICATE),
            postgresql_where=text(PENDING_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # {"url", "name", "size", "checksum"} from the Zalo event, sealed to the tip key.
    sealed_source: Mapped[bytes] = mapped_column(LargeBinary)
    # The same payload sealed to the transit key, for the media worker; erased once fetched.
    sealed_fetch: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default=AttachmentState.PENDING)
    refusal: Mapped[str | None] = mapped_column(String(200))
    # Where the sealed, cleaned bytes are kept in the file store.
    storage_ref: Mapped[str | None] = mapped_column(String(200))
    # ATTACHMENT_FACTS: SHA-256 of the bytes received, the check against Zalo's size and
    # checksum, the formats received and kept (JSON, sealed to the tip key).
    sealed_facts: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[Message] = relationship()
