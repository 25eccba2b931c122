"""notices: the one-off answer to a command from an informant who has no tip

Revision ID: 0027_notices
Revises: 0026_console
Create Date: 2026-12-06

- ``notices``: "tình trạng" from someone with no tip is answered, never turned into a tip;
  the answer waits here, sealed to the transit epoch, until the outbound worker sends it
  (tipline.models.notice).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0027_notices"
down_revision: str | None = "0026_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("oa_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sealed_for_relay", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )


def downgrade() -> None:
    op.drop_table("notices")
