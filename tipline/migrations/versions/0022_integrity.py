"""integrity: certificates of stored public keys (tips, unit keys, officers, transit epochs)

Revision ID: 0022_integrity
Revises: 0021_grants
Create Date: 2026-12-06

``key_certificate`` on ``tips``, ``unit_keys``, ``officers`` and ``transit_epochs``: an
Ed25519 signature by the installation's key-certification key over the public key and the
row's identity (keys.certify, tipline.models.key_trust). Sealing refuses a stored key whose
certificate is missing or wrong. Rows made before this migration have none: after upgrading,
with the services stopped, run ``tipline keys certify-existing`` once (docs/operations.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_integrity"
down_revision: str | None = "0021_grants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tips", "unit_keys", "officers", "transit_epochs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("key_certificate", sa.LargeBinary(length=64), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("key_certificate")
