"""The allocation service's planning state: requirements, pledges, catalogue items, shipments,
allocations and shortfalls (see services/allocation/tables.py).

Revision ID: 0002
Revises: 0001

The tables as this revision created them, spelt out (frozen): later revisions change them.
"""

import sqlalchemy as sa
from alembic import op

from shared.eventstore.tables import Json

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

metadata = sa.MetaData()

Id = sa.String(200)
Code = sa.String(100)

requirements = sa.Table(
    "requirements",
    metadata,
    sa.Column("requirement_id", Id, primary_key=True),
    sa.Column("item_code", Code, nullable=False, index=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("needed_by", sa.Date, nullable=False),
    sa.Column("destination", sa.String(200), nullable=False, server_default=""),
    # submitted | endorsed | cancelled | fulfilled
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
)

pledges = sa.Table(
    "pledges",
    metadata,
    sa.Column("pledge_id", Id, primary_key=True),
    sa.Column("donor", sa.String(8), nullable=False),
    sa.Column("item_code", Code, nullable=False, index=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("available_from", sa.Date, nullable=False),
    # announced | confirmed | withdrawn
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    # Units lost in transit: the pledge can no longer give them.
    sa.Column("lost", sa.BigInteger, nullable=False, server_default="0"),
)

catalogue_items = sa.Table(
    "catalogue_items",
    metadata,
    sa.Column("item_code", Code, primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("capability", sa.String(50), nullable=False),
    sa.Column("unit", sa.String(50), nullable=False),
    sa.Column("eum_class", sa.String(20), nullable=False),
    sa.Column("substitutes", Json, nullable=False),
)

allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("allocation_id", Id, primary_key=True),
    sa.Column("requirement_id", Id, nullable=False, index=True),
    sa.Column("pledge_id", Id, nullable=False, index=True),
    sa.Column("item_code", Code, nullable=False, index=True),  # the pledge's item
    sa.Column("quantity", sa.BigInteger, nullable=False),
    # Units of it lost in transit (shipment.lost): they no longer cover the requirement.
    sa.Column("lost", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("hub", sa.String(50), nullable=False),
    sa.Column("handover_by", sa.Date, nullable=False),
    # proposed | approved | rejected | cancelled
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("approved_by", sa.String(300), nullable=True),  # an actor: sub (200) @ hub (50)
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("shipment_id", Id, primary_key=True),
    sa.Column("allocation_id", Id, nullable=False, index=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("lost", sa.BigInteger, nullable=False, server_default="0"),
)

# The last shortfall.recorded per requirement, so an identical one is not published again.
shortfalls = sa.Table(
    "shortfalls",
    metadata,
    sa.Column("requirement_id", Id, primary_key=True),
    sa.Column("open_quantity", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def upgrade() -> None:
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
