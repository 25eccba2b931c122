"""officers: when TOTP enrolment was confirmed

Revision ID: 0006_totp
Revises: 0005_inbound
Create Date: 2026-11-23 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipline.models.base

revision: str = "0006_totp"
down_revision: str | None = "0005_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "totp_confirmed_at", tipline.models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.drop_column("totp_confirmed_at")
