"""anomaly reviews: an auditor marks a flag reviewed, with a note

Revision ID: 0028_anomaly_reviews
Revises: 0027_notices
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0028_anomaly_reviews"
down_revision: str | None = "0027_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "anomaly_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(length=96), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("reviewer_id", sa.String(length=32), nullable=False),
        sa.Column("reviewer_name", sa.String(length=200), nullable=False),
        sa.Column("reviewed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("flag"),
    )


def downgrade() -> None:
    op.drop_table("anomaly_reviews")
