"""expansion lanes: each stored event carries its OA's lane, and lanes expand side by side

An informant is an alias of one OA (Zalo's user ids are the OA's), so an informant's messages
stay in order when each OA's events expand in order; different OAs' events no longer wait for
one fleet-wide expander. Events stored before this are lane 0.

Revision ID: 0032_expansion_lanes
Revises: 0031_oa_token_facts
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_expansion_lanes"
down_revision: str | None = "0031_oa_token_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.add_column(
            sa.Column("lane", sa.SmallInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_events") as batch:
        batch.drop_column("lane")
