"""The audit trail keeps each event's data as JSON (as received), not JSONB.

Revision ID: 0003
Revises: 0002

0002 creates the tables from the current metadata, so only schemas created before this revision
have a JSONB column to change (a rewrite of the audit table).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _audit_data_type() -> str | None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return None  # SQLite has one JSON type
    found = bind.scalar(
        sa.text(
            "SELECT data_type FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = 'audit' AND column_name = 'data'"
        )
    )
    return None if found is None else str(found)


def upgrade() -> None:
    if _audit_data_type() == "jsonb":
        op.execute("ALTER TABLE audit ALTER COLUMN data TYPE json USING data::text::json")


def downgrade() -> None:
    if _audit_data_type() == "json":
        op.execute("ALTER TABLE audit ALTER COLUMN data TYPE jsonb USING data::jsonb")
