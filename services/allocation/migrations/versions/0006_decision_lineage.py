"""The decisions behind each requirement and pledge, so allocations carry their lineage.

Revision ID: 0006
Revises: 0005

`requirements.decision_id` (the decision that endorsed it) and `pledges.decision_id` (the one
that confirmed it). Rows learnt before this revision keep NULL: the allocation service did not
keep the events it consumed, so their proposals say "not known" (as v1 events upcast do).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("requirements", "pledges")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("decision_id", sa.String(200), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:  # (SQLite rebuilds the table)
            batch.drop_column("decision_id")
