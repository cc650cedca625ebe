"""The audit trail fits every actor and correlation id a request may carry: `actor` is the
token's `sub` (≤200) with `@hub` (≤50), so up to 251 characters; `X-Correlation-ID` takes up to
128. Both were shorter (200, 100): such an event failed to apply on PostgreSQL.

Revision ID: 0004
Revises: 0003

0002 creates the tables from the current metadata, so only schemas created before this revision
have the shorter columns. Widening a VARCHAR is a catalogue change on PostgreSQL (no rewrite);
SQLite does not enforce VARCHAR lengths.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WIDTHS = {"actor": (200, 300), "correlation_id": (100, 128)}


def _length(column: str) -> int | None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    found = bind.scalar(
        sa.text(
            "SELECT character_maximum_length FROM information_schema.columns WHERE table_schema"
            " = current_schema() AND table_name = 'audit' AND column_name = :column"
        ),
        {"column": column},
    )
    return None if found is None else int(found)


def _resize(new: bool) -> None:
    for column, (old_width, new_width) in WIDTHS.items():
        current = _length(column)
        wanted = new_width if new else old_width
        if current is not None and current != wanted:
            op.execute(f"ALTER TABLE audit ALTER COLUMN {column} TYPE VARCHAR({wanted})")


def upgrade() -> None:
    _resize(new=True)


def downgrade() -> None:
    _resize(new=False)
