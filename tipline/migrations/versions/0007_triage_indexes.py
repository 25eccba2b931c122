"""tips: indexes for the triage inbox, its counters and the search bound at 100,000 tips

Revision ID: 0007_triage_indexes
Revises: 0006_totp
Create Date: 2026-11-23 19:40:00

benchmarks/triage.py: the commander's inbox over every unit took 196 ms p50 / 338 ms p95
with 100,000 tips (its status counters scanned the table; the search bound sorted every tip
of the units). (unit_id, status, dispatched_at, category) covers the inbox's count and
counters; (unit_id, created_at) gives the newest tips of a unit without a sort of all of them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_triage_indexes"
down_revision: str | None = "0006_totp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tips_unit_status", ["unit_id", "status", "dispatched_at", "category"], unique=False
        )
        batch_op.create_index("ix_tips_unit_created", ["unit_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_index("ix_tips_unit_created")
        batch_op.drop_index("ix_tips_unit_status")
