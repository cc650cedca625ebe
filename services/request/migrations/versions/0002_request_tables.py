"""The request service's tables: added catalogue items, planned shipments.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from shared.eventstore.tables import Json

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalogue_items",
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("capability", sa.String(40), nullable=False),
        sa.Column("unit", sa.String(40), nullable=False),
        sa.Column("eum_class", sa.String(20), nullable=False),
        sa.Column("substitutes", Json, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "planned_shipments",
        sa.Column("shipment_id", sa.String(200), primary_key=True),
        sa.Column("requirement_id", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("received_good", sa.Integer, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("planned_shipments")
    op.drop_table("catalogue_items")
