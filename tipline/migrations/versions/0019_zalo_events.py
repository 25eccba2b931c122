"""zalo events: a quarantine for signed events intake cannot read; Zalo's ids of our messages

Revision ID: 0019_zalo_events
Revises: 0018_oa_status
Create Date: 2026-12-12

- ``quarantined_events``: a validly signed event intake could not read, kept instead of
  refused (Zalo unsubscribes an app that answers non-200): sealed to the receiving OA's unit
  key, or only a keyed digest and a size (tipline.models.quarantined_event).
- ``messages.zalo_message_id``: Zalo's id of an outbound message (its send answer's
  ``message_id``, or an OA admin's reply typed on Zalo), so an informant's quote finds it.
- ``messages.delivery_problem``: why Zalo did not take an outbound message, as a class.
- ``tips.informant_withdrawn_at``: the informant withdrew their consent on Zalo
  (``user_withdraw``): cut off like STOP, and no longer linked to their Zalo id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0019_zalo_events"
down_revision: str | None = "0018_oa_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantined_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("oa_id", sa.String(length=32), nullable=True),
        sa.Column("event_name", sa.String(length=48), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sealed_event", sa.LargeBinary(), nullable=True),
        sa.Column("unit_key_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["unit_key_id"],
            ["unit_keys.id"],
            name=op.f("fk_quarantined_events_unit_key_id_unit_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_events")),
        sa.UniqueConstraint("digest", name=op.f("uq_quarantined_events_digest")),
    )
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_events_received_at"), ["received_at"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zalo_message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("delivery_problem", sa.String(length=24), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_messages_zalo_message_id"), ["zalo_message_id"], unique=False
        )
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("informant_withdrawn_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_column("informant_withdrawn_at")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_zalo_message_id"))
        batch_op.drop_column("delivery_problem")
        batch_op.drop_column("zalo_message_id")
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_events_received_at"))
    op.drop_table("quarantined_events")
