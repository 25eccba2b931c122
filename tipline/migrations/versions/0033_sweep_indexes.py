"""sweep indexes: the replies still queued and the attachments still pending, indexed alone

Every worker sweeps every 15 s; its reads of queued replies and pending attachments scanned
the whole `messages` and `attachments` tables, so an idle worker's CPU grew with every message
ever stored. Partial indexes hold only the rows still waiting.

Revision ID: 0033_sweep_indexes
Revises: 0032_expansion_lanes
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033_sweep_indexes"
down_revision: str | None = "0032_expansion_lanes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = "delivery = 'queued'"
PENDING = "state = 'pending'"


def upgrade() -> None:
    op.create_index(
        "ix_messages_queued",
        "messages",
        ["created_at"],
        sqlite_where=sa.text(QUEUED),
        postgresql_where=sa.text(QUEUED),
    )
    op.create_index(
        "ix_attachments_pending",
        "attachments",
        ["created_at"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_attachments_pending", table_name="attachments")
    op.drop_index("ix_messages_queued", table_name="messages")
