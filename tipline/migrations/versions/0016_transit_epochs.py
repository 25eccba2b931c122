"""transit epochs: short-lived transit keys, an event's fallback copy, STOP recorded per tip

Revision ID: 0016_transit_epochs
Revises: 0015_one_vocabulary
Create Date: 2026-12-06

- ``transit_epochs``: the public halves of the transit keys (tipline.transit); their private
  halves live only in the volatile key store.
- ``inbound_events.sealed_fallback`` / ``fallback_key_id``: the event sealed to its unit's key
  as well, and ``transit_lost_at``: when expansion found its epoch's key gone.
- ``tips.informant_stopped_at``: the informant sent STOP after this tip; never reachable again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0016_transit_epochs"
down_revision: str | None = "0015_one_vocabulary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transit_epochs",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("destroyed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transit_epochs")),
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_fallback", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("fallback_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("transit_lost_at", UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_inbound_events_fallback_key_id_unit_keys"),
            "unit_keys",
            ["fallback_key_id"],
            ["id"],
        )
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("informant_stopped_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_column("informant_stopped_at")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_inbound_events_fallback_key_id_unit_keys"), type_="foreignkey"
        )
        batch_op.drop_column("transit_lost_at")
        batch_op.drop_column("fallback_key_id")
        batch_op.drop_column("sealed_fallback")
    op.drop_table("transit_epochs")
