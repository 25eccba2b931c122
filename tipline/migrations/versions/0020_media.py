"""media: what the media worker learnt of each file, sealed to the tip

Revision ID: 0020_media
Revises: 0019_zalo_events
Create Date: 2026-12-13

- ``attachments.sealed_facts``: the SHA-256 of the bytes received, their size, the check
  against the ``size`` and ``checksum`` Zalo's payload gave, the format received and the one
  kept, pages and duration; JSON sealed to the tip's key (ATTACHMENT_FACTS).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_media"
down_revision: str | None = "0019_zalo_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("sealed_facts", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("sealed_facts")
