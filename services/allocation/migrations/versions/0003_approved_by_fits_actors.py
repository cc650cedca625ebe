"""`allocations.approved_by` fits every actor: the token's `sub` (≤200) with `@hub` (≤50), up
to 251 characters; it was VARCHAR(200), so an approval by such a principal failed on PostgreSQL.

Revision ID: 0003
Revises: 0002

0002 creates the tables from the current metadata, so only schemas created before this revision
have the shorter column. Widening a VARCHAR is a catalogue change on PostgreSQL (no rewrite);
SQLite does not enforce VARCHAR lengths.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _length() -> int | None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    found = bind.scalar(
        sa.text(
            "SELECT character_maximum_length FROM information_schema.columns WHERE table_schema"
            " = current_schema() AND table_name = 'allocations' AND column_name = 'approved_by'"
        )
    )
    return None if found is None else int(found)


def _resize(width: int) -> None:
    current = _length()
    if current is not None and current != width:
        op.execute(f"ALTER TABLE allocations ALTER COLUMN approved_by TYPE VARCHAR({width})")


def upgrade() -> None:
    _resize(300)


def downgrade() -> None:
    _resize(200)
