"""The delivery service's own tables: shipment listing, allocation details, pledge donors,
added items, applied batch rows.

Revision ID: 0002
Revises: 0001

Creates today's tables from `services.delivery.tables`; when they change, spell these out here
with `op.create_table` first, then add the change as revision 0003.
"""

from alembic import op

from services.delivery.tables import metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
