"""grants: unit keys only on a key holder's approval; forced password change; session epochs

Revision ID: 0021_grants
Revises: 0020_media
Create Date: 2026-12-06

- ``grant_requests``: an account waiting for its unit key (new, reset, moved, role changed),
  who asked, and the key holder who approved or rejected it (tipline.grants).
- ``officers.must_change_password``: set by an admin's password (new account, reset).
- ``officers.session_epoch``: raised to end every session of the account.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0021_grants"
down_revision: str | None = "0020_media"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grant_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_grant_requests_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_grant_requests_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["officers.id"],
            name=op.f("fk_grant_requests_requested_by_id_officers"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["officers.id"],
            name=op.f("fk_grant_requests_decided_by_id_officers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grant_requests")),
        sa.UniqueConstraint("public_id", name=op.f("uq_grant_requests_public_id")),
    )
    with op.batch_alter_table("grant_requests", schema=None) as batch_op:
        batch_op.create_index("ix_grant_requests_state_unit", ["state", "unit_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_grant_requests_officer_id"), ["officer_id"], unique=False
        )
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
        batch_op.drop_column("must_change_password")
    with op.batch_alter_table("grant_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grant_requests_officer_id"))
        batch_op.drop_index("ix_grant_requests_state_unit")
    op.drop_table("grant_requests")
