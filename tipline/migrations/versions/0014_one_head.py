"""one head: the four branches (routing, media, retention, audit head privileges) joined

Revision ID: 0014_one_head
Revises: 0004_routing, 0010_media, 0012_retention, 0013_audit_head_privileges
Create Date: 2026-12-06

No schema change. From here on every migration has exactly one parent, and
``tests/test_layering.py`` fails on a second head.
"""

from collections.abc import Sequence

revision: str = "0014_one_head"
down_revision: str | Sequence[str] | None = (
    "0004_routing",
    "0010_media",
    "0012_retention",
    "0013_audit_head_privileges",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
