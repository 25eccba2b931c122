"""official accounts: what `tipline zalo oa-status` and the admin's OA page show

Revision ID: 0018_oa_status
Revises: 0017_inbound_purge
Create Date: 2026-12-08

- ``tokens_updated_at``: when the current token pair was stored (its refresh token dies three
  months later unless used);
- ``token_error_at``: when Zalo refused the OA's refresh token;
- ``last_webhook_at``: when the OA's last message event was expanded;
- ``last_error`` / ``last_error_at``: the OA's last send or refresh failure.
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from tipline.models.base import UTCDateTime

revision: str = "0018_oa_status"
down_revision: str | Sequence[str] | None = "0017_inbound_purge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCESS_TOKEN_LIFE = timedelta(seconds=90_000)


def upgrade() -> None:
    with op.batch_alter_table("official_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_error_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("tokens_updated_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_webhook_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("last_error_at", UTCDateTime(), nullable=True))
    # A pair stored before this revision was stored when its access token was issued: 25 hours
    # (Zalo's lifetime) before that token expires.
    oas = sa.table(
        "official_accounts",
        sa.column("id", sa.Integer()),
        sa.column("sealed_tokens", sa.LargeBinary()),
        sa.column("access_expires_at", UTCDateTime()),
        sa.column("tokens_updated_at", UTCDateTime()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(oas.c.id, oas.c.access_expires_at).where(
            oas.c.sealed_tokens.is_not(None), oas.c.access_expires_at.is_not(None)
        )
    ).all()
    for row in rows:
        bind.execute(
            oas.update()
            .where(oas.c.id == row.id)
            .values(tokens_updated_at=row.access_expires_at - ACCESS_TOKEN_LIFE)
        )


def downgrade() -> None:
    with op.batch_alter_table("official_accounts", schema=None) as batch_op:
        batch_op.drop_column("last_error_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("last_webhook_at")
        batch_op.drop_column("tokens_updated_at")
        batch_op.drop_column("token_error_at")
