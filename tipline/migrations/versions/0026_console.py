"""console: the duty officer's live inbox, unread markers, SLA per unit, canned replies

Revision ID: 0026_console
Revises: 0022_integrity
Create Date: 2026-12-06

- ``tips.arrived_at``, ``tips.unit_opened_at``, ``tips.responded_at``: the SLA clock runs
  from arrival in the current unit and stops when an officer of that unit opens the tip; a
  transfer or escalation restarts it. ``responded_at``: the first answer to the informant.
- ``officers.notifications_seen_at``: notices after it are unread.
- ``tip_views``: when each officer last looked at each tip (the inbox's unread markers).
- ``canned_replies``: each unit's ready-made answers to informants.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0026_console"
down_revision: str | None = "0022_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tips") as batch_op:
        batch_op.add_column(sa.Column("arrived_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("unit_opened_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("responded_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("officers") as batch_op:
        batch_op.add_column(sa.Column("notifications_seen_at", UTCDateTime(), nullable=True))
    # Tips already opened by anyone keep their clock stopped, as they were shown.
    op.execute("UPDATE tips SET unit_opened_at = first_opened_at")
    op.create_table(
        "tip_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("tip_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_tip_views_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(["tip_id"], ["tips.id"], name=op.f("fk_tip_views_tip_id_tips")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip_views")),
        sa.UniqueConstraint("officer_id", "tip_id", name="uq_tip_views_officer_id_tip_id"),
    )
    op.create_index("ix_tip_views_tip_id", "tip_views", ["tip_id"])
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("text", sa.String(length=2000), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_canned_replies_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("public_id", name="uq_canned_replies_public_id"),
    )
    op.create_index("ix_canned_replies_unit_id", "canned_replies", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_canned_replies_unit_id", table_name="canned_replies")
    op.drop_table("canned_replies")
    op.drop_index("ix_tip_views_tip_id", table_name="tip_views")
    op.drop_table("tip_views")
    with op.batch_alter_table("officers") as batch_op:
        batch_op.drop_column("notifications_seen_at")
    with op.batch_alter_table("tips") as batch_op:
        batch_op.drop_column("responded_at")
        batch_op.drop_column("unit_opened_at")
        batch_op.drop_column("arrived_at")
