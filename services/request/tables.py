"""The request service's own small tables, each written in the same transaction as the events
it mirrors (so they can never disagree with the store)."""

from __future__ import annotations

import sqlalchemy as sa

from shared.eventstore.tables import Json

metadata = sa.MetaData()

# Items admins added (the base catalogue is a file): what handlers check item codes against.
catalogue_items = sa.Table(
    "catalogue_items",
    metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("capability", sa.String(40), nullable=False),
    sa.Column("unit", sa.String(40), nullable=False),
    sa.Column("eum_class", sa.String(20), nullable=False),
    sa.Column("substitutes", Json, nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

# Shipments the delivery service planned, as far as this service needs them: `shipment.received`
# names only the shipment, so its requirement and delivered quantity are kept from
# `shipment.planned` and `shipment.handed_over`.
planned_shipments = sa.Table(
    "planned_shipments",
    metadata,
    sa.Column("shipment_id", sa.String(200), primary_key=True),
    sa.Column("requirement_id", sa.String(200), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("received_good", sa.Integer, nullable=True),
)
