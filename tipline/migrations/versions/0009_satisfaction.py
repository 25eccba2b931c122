"""tips: the informant's 1–5 satisfaction answer after closure (issue 6)

Revision ID: 0009_satisfaction
Revises: 0007_triage_indexes
Create Date: 2026-11-24 10:00:00

When an officer closes a tip as resolved or unfounded, the informant is thanked and asked for
a score from 1 to 5 (tipline.informant). ``satisfaction_asked_at`` marks the pending question
(answers count for 7 days); ``satisfaction`` is the number they sent: plaintext metadata, a
number only, never their words.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipline.models.base

revision: str = "0009_satisfaction"
down_revision: str | None = "0007_triage_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "satisfaction_asked_at",
                tipline.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("satisfaction", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_column("satisfaction")
        batch_op.drop_column("satisfaction_asked_at")
