"""inbound events: the webhook's single sealed row

Revision ID: 0005_inbound
Revises: 0002
Create Date: 2026-11-23 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipline.models.base

revision: str = "0005_inbound"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("received_at", tipline.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sealed_event", sa.LargeBinary(), nullable=True),
        sa.Column("processed_at", tipline.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tip_public_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_inbound_events_dedup_key")),
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_events_pending", ["processed_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_events_pending")
    op.drop_table("inbound_events")
