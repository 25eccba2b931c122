"""one vocabulary: stored categories and notification kinds rewritten to the shared enums

Revision ID: 0015_one_vocabulary
Revises: 0014_one_head
Create Date: 2026-12-07

No schema change; rows written under the old, doubled vocabulary are rewritten to the one in
``tipline.models.enums``:

- ``tips.category``, the only column that holds a category: the classifier wrote
  ``bao_luc_gay_roi`` and ``buon_lau_hang_gia``, which the staff UI never knew (it labels,
  filters and offers ``bao_luc`` and ``buon_lau``).
- ``notifications.kind``: an officer's assignment wrote ``assigned`` where the duty roster
  writes ``assigned_tip`` for the same notice.

Categories appear in no sealed payload (the sealed routing record holds places and scores
only). ``category_change`` audit events keep the spelling they were written with in their
detail: the trail is append-only and hash-chained, and nothing reads those values back.

The values are spelled out here rather than imported: a migration must keep meaning what it
meant when it was written, whatever the enums become.

Downgrade leaves the rows as they are, on purpose: revision 0014's code already knows the new
values (``bao_luc`` and ``buon_lau`` are its UI's own keys, ``assigned_tip`` its roster's
kind), while rewriting them back would make every such tip unlabelled and unfilterable in
0014's UI again, including those an officer had categorised by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015_one_vocabulary"
down_revision: str | None = "0014_one_head"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, old value, new value)
REWRITES = (
    ("tips", "category", "bao_luc_gay_roi", "bao_luc"),
    ("tips", "category", "buon_lau_hang_gia", "buon_lau"),
    ("notifications", "kind", "assigned", "assigned_tip"),
)


def upgrade() -> None:
    for table_name, column_name, old, new in REWRITES:
        table = sa.table(table_name, sa.column(column_name, sa.String))
        column = table.c[column_name]
        op.execute(table.update().where(column == old).values({column_name: new}))


def downgrade() -> None:
    """Nothing to undo: see the module's docstring."""
