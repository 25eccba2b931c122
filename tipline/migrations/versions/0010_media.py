"""attachments: the download source sealed to the transit key until the media worker fetches it

Revision ID: 0010_media
Revises: 0009_satisfaction
Create Date: 2026-11-24 12:00:00

Workers lose the tip's private key at dispatch, so ``sealed_source`` (sealed to the tip) is out
of their reach; ``sealed_fetch`` carries the same payload sealed to the transit key, and the
media job erases it once the file is stored or refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_media"
down_revision: str | None = "0009_satisfaction"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_fetch", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("sealed_fetch")
