"""The audit chain's head: one row, the lock that serialises appends (tipline.audit.chain).

Every append updates this row first, so concurrent writers queue on its row lock (PostgreSQL)
or the database write lock (SQLite) and the chain never forks. It also names the last event,
so deleting the newest events is detected even without a checkpoint.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tipline.models.base import Base

HEAD_ROW_ID = 1
GENESIS_HASH = "0" * 64


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
