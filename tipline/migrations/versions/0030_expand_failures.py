"""expand failures: an event that cannot be expanded is counted and, after a few tries, set aside

Revision ID: 0030_expand_failures
Revises: 0029_tip_links
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0030_expand_failures"
down_revision: str | None = "0029_tip_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.add_column(
            sa.Column("expand_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("expand_failed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("expand_error", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_column("expand_error")
        batch.drop_column("expand_failed_at")
        batch.drop_column("expand_failures")
