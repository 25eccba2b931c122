"""tip links: an officer links two tips as related (issue 18)

Revision ID: 0029_tip_links
Revises: 0028_anomaly_reviews
Create Date: 2026-12-06

One row per linked pair of tips, the smaller id first (``ck_tip_links_ordered``); ids, the
officer and the time only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0029_tip_links"
down_revision: str | None = "0028_anomaly_reviews"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tip_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("first_tip_id", sa.Integer(), nullable=False),
        sa.Column("second_tip_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("first_tip_id < second_tip_id", name=op.f("ck_tip_links_ordered")),
        sa.ForeignKeyConstraint(
            ["first_tip_id"], ["tips.id"], name=op.f("fk_tip_links_first_tip_id_tips")
        ),
        sa.ForeignKeyConstraint(
            ["second_tip_id"], ["tips.id"], name=op.f("fk_tip_links_second_tip_id_tips")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["officers.id"], name=op.f("fk_tip_links_created_by_id_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip_links")),
        sa.UniqueConstraint(
            "first_tip_id", "second_tip_id", name="uq_tip_links_first_tip_id_second_tip_id"
        ),
    )
    op.create_index("ix_tip_links_second_tip_id", "tip_links", ["second_tip_id"])


def downgrade() -> None:
    op.drop_index("ix_tip_links_second_tip_id", table_name="tip_links")
    op.drop_table("tip_links")
