"""The request service's own small tables, each written in the same transaction as the events
it mirrors (so they can never disagree with the store), and the reads and writes on them."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.catalogue import EumClass, Item, base_items
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


# -- the catalogue as this service knows it: the base items plus the items admins added -------


def _item(row: sa.Row[tuple[object, ...]]) -> Item:
    eum: EumClass = row.eum_class
    return Item(
        code=row.code,
        name=row.name,
        capability=row.capability,
        unit=row.unit,
        eum_class=eum,
        substitutes=tuple(row.substitutes),
    )


async def added_items(conn: AsyncConnection) -> dict[str, Item]:
    rows = await conn.execute(sa.select(catalogue_items).order_by(catalogue_items.c.code))
    return {row.code: _item(row) for row in rows}


async def all_items(conn: AsyncConnection) -> dict[str, Item]:
    return base_items() | await added_items(conn)


async def find_item(conn: AsyncConnection, code: str) -> Item | None:
    base = base_items().get(code)
    if base is not None:
        return base
    row = (
        await conn.execute(sa.select(catalogue_items).where(catalogue_items.c.code == code))
    ).first()
    return None if row is None else _item(row)


async def remember_item(conn: AsyncConnection, item: Item) -> None:
    await conn.execute(
        catalogue_items.insert().values(
            code=item.code,
            name=item.name,
            capability=item.capability,
            unit=item.unit,
            eum_class=item.eum_class,
            substitutes=list(item.substitutes),
            added_at=datetime.now(UTC),
        )
    )


# -- planned shipments -----------------------------------------------------------------------


async def plan_shipment(
    conn: AsyncConnection, shipment_id: str, requirement_id: str, quantity: int
) -> None:
    """Keep a planned shipment; a repeated plan of a shipment already kept changes nothing."""
    known = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(planned_shipments)
        .where(planned_shipments.c.shipment_id == shipment_id)
    )
    if not known:
        await conn.execute(
            planned_shipments.insert().values(
                shipment_id=shipment_id, requirement_id=requirement_id, quantity=quantity
            )
        )


async def record_hand_over(conn: AsyncConnection, shipment_id: str, received_good: int) -> None:
    await conn.execute(
        planned_shipments.update()
        .where(planned_shipments.c.shipment_id == shipment_id)
        .values(received_good=received_good)
    )


async def planned_shipment(
    conn: AsyncConnection, shipment_id: str
) -> sa.Row[tuple[object, ...]] | None:
    return (
        await conn.execute(
            sa.select(planned_shipments).where(planned_shipments.c.shipment_id == shipment_id)
        )
    ).first()
