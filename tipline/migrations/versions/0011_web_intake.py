"""tips: the web informant's wrapped tip key (issue 6, web intake)

Revision ID: 0011_web_intake
Revises: 0009_satisfaction
Create Date: 2026-11-23 20:30:00

A tip from the web form (/bao-tin, channel "web") carries its private key wrapped under
Argon2id of the passphrase shown once to the informant, so they can read the officers'
replies at /tra-cuu. Zalo tips leave it empty. (0010_media branches from 0009 too: two heads,
both applied by ``tipline db upgrade``.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_web_intake"
down_revision: str | None = "0009_satisfaction"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("informant_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_column("informant_key")
