"""The delivery service's own tables: shipment listing, allocation details, pledge donors,
added items, applied batch rows.

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

# One row per shipment for listing and filtering; `view` is the full view (redacted on read).
shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("shipment_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False, index=True),
    sa.Column("hub", sa.String(50), nullable=False, index=True),
    sa.Column("donor", sa.String(2), nullable=False, index=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("view", Json, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# What the allocation events tell us; `allocation.approved` carries no details of its own.
# status: proposed | approved (waiting for its pledge or item to be known) | planned |
# rejected | cancelled.
allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("allocation_id", sa.String(200), primary_key=True),
    sa.Column("requirement_id", sa.String(200), nullable=False),
    sa.Column("pledge_id", sa.String(200), nullable=False, index=True),
    sa.Column("item_code", sa.String(100), nullable=False, index=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("hub", sa.String(50), nullable=False),
    sa.Column("handover_by", sa.Date, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("shipment_id", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# pledge -> donor, from `pledge.announced` (allocation events do not carry the donor).
pledges = sa.Table(
    "pledges",
    metadata,
    sa.Column("pledge_id", sa.String(200), primary_key=True),
    sa.Column("donor", sa.String(2), nullable=False),
)

# Items added at run time (`catalogue.item_added`); the base catalogue comes from shared/catalogue.
items = sa.Table(
    "items",
    metadata,
    sa.Column("item_code", sa.String(100), primary_key=True),
    sa.Column("eum_class", sa.String(20), nullable=False),
)

# Batch milestone rows already applied, per uploader: a re-sent row answers as it did first.
batch_rows = sa.Table(
    "batch_rows",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("row_id", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result", Json, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def upgrade() -> None:
    metadata.create_all(bind=op.get_bind())


def downgrade() -> None:
    metadata.drop_all(bind=op.get_bind())
