"""The allocation service's planning state: requirements, pledges, catalogue items, shipments,
allocations and shortfalls (see services/allocation/tables.py).

Revision ID: 0002
Revises: 0001

When these tables change, freeze this revision first (spell today's tables out here with
`op.create_table`), then add a revision with the change.
"""

from alembic import op

from services.allocation.tables import metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
