"""audit head: no DELETE or TRUNCATE for the migrating role, no TRUNCATE for anyone (PostgreSQL)

Revision ID: 0013_audit_head_privileges
Revises: 0003_audit
Create Date: 2026-11-23

0003 revoked UPDATE, DELETE and TRUNCATE on audit_events from the role running the
migration, but on audit_head only from PUBLIC, and no trigger covered TRUNCATE of the head:
that role could empty the head table (found by the PostgreSQL test run). Verification reports
a missing head, but the head is meant to be as append-only as the events. SQLite has no
TRUNCATE and its DELETE trigger already covers the head.
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0013_audit_head_privileges'
down_revision: str | None = '0003_audit'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_UP = [
    """
    CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION tipline_audit_append_only()
    """,
    "REVOKE DELETE, TRUNCATE ON audit_head FROM CURRENT_USER",
]

PG_DOWN = [
    "GRANT DELETE, TRUNCATE ON audit_head TO CURRENT_USER",
    "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in PG_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in PG_DOWN:
            op.execute(statement)
