"""inbound events: a processed event's receive time may be erased (retention)

Revision ID: 0017_inbound_purge
Revises: 0016_transit_epochs
Create Date: 2026-12-06

After Zalo's redelivery horizon the retention pass keeps only a processed event's dedup key
(and the day it was processed, to delete the row a week later): ``received_at`` becomes
nullable. Going down, an erased receive time is filled with the processed day.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipline.models.base

revision: str = "0017_inbound_purge"
down_revision: str | Sequence[str] | None = "0016_transit_epochs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.alter_column(
            "received_at",
            existing_type=tipline.models.base.UTCDateTime(timezone=True),
            nullable=True,
        )


def downgrade() -> None:
    op.execute("UPDATE inbound_events SET received_at = processed_at WHERE received_at IS NULL")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.alter_column(
            "received_at",
            existing_type=tipline.models.base.UTCDateTime(timezone=True),
            nullable=False,
        )
