"""What an allocation's shipment needs to carry its lineage and causation.

Revision ID: 0005
Revises: 0004

`allocations.endorsed_by_decision` / `confirmed_by_decision` (from `allocation.proposed` v2) and
`approval_event_id` / `approval_correlation_id` (the `allocation.approved` event, so a shipment
planned later, once its donor or item is known, still names the approval as its cause). Rows
recorded before this revision keep NULL: not known.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("endorsed_by_decision", 200),
    ("confirmed_by_decision", 200),
    ("approval_event_id", 36),
    ("approval_correlation_id", 200),
)


def upgrade() -> None:
    for name, length in _COLUMNS:
        op.add_column("allocations", sa.Column(name, sa.String(length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("allocations") as batch:  # (SQLite rebuilds the table)
        for name, _ in _COLUMNS:
            batch.drop_column(name)
