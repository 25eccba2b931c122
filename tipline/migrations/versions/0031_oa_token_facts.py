"""oa_token_facts: what an OA's token state is computed from, without its tokens

A view, so that `tipline metrics` (its PostgreSQL role) reads whether an OA has tokens, an
error, and when they expire, and not the OA's row: the tokens sealed to the relay key, the last
error's text. A view runs with its owner's privileges; the metrics role is granted it alone.

Revision ID: 0031_oa_token_facts
Revises: 0030_expand_failures
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031_oa_token_facts"
down_revision: str | None = "0030_expand_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE VIEW oa_token_facts AS SELECT oa_id, "
        "sealed_tokens IS NOT NULL AS has_tokens, token_error IS NOT NULL AS has_error, "
        "access_expires_at, tokens_updated_at FROM official_accounts"
    )


def downgrade() -> None:
    op.execute("DROP VIEW oa_token_facts")
