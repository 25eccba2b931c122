"""tips: retention warning and crypto-shredding timestamps (issue 6, retention)

Revision ID: 0012_retention
Revises: 0011_web_intake
Create Date: 2026-11-23 21:00:00

``retention_warned_at``: when the unit was told the closed tip nears the end of its retention
period; ``shredded_at``: when its grants and sealed content were deleted (tipline.retention).
"""

from collections.abc import Sequence

import sqlalchemy as sa

import tipline.models.base
from alembic import op

revision: str = "0012_retention"
down_revision: str | None = "0011_web_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "retention_warned_at", tipline.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("shredded_at", tipline.models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_column("shredded_at")
        batch_op.drop_column("retention_warned_at")
