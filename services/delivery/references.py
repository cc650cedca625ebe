"""What the delivery service learns from other services' events and keeps to plan shipments:
allocation details, each pledge's donor, and items added to the catalogue at run time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.delivery.tables import allocations, items, pledges
from shared.catalogue import base_items
from shared.contracts.allocations import AllocationProposed
from shared.contracts.deliveries import EumClass
from shared.db.rows import upsert

EUM_CLASSES: tuple[EumClass, ...] = ("none", "routine", "enhanced")


@dataclass(frozen=True)
class Allocation:
    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    hub: str
    handover_by: date
    status: str
    shipment_id: str | None


async def record_proposal(conn: AsyncConnection, proposed: AllocationProposed) -> None:
    """Keep a proposal's details; a decided allocation keeps what it was decided on."""
    known = await allocation(conn, proposed.allocation_id)
    if known is not None and known.status != "proposed":
        return
    await upsert(
        conn,
        allocations,
        {"allocation_id": proposed.allocation_id},
        {
            "requirement_id": proposed.requirement_id,
            "pledge_id": proposed.pledge_id,
            "item_code": proposed.item_code,
            "quantity": proposed.quantity,
            "hub": proposed.hub,
            "handover_by": proposed.handover_by,
            "status": "proposed",
            "updated_at": datetime.now(UTC),
        },
    )


async def allocation(conn: AsyncConnection, allocation_id: str) -> Allocation | None:
    query = sa.select(allocations).where(allocations.c.allocation_id == allocation_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _allocation(row)


async def set_status(
    conn: AsyncConnection, allocation_id: str, status: str, shipment_id: str | None = None
) -> None:
    values: dict[str, object] = {"status": status, "updated_at": datetime.now(UTC)}
    if shipment_id is not None:
        values["shipment_id"] = shipment_id
    await conn.execute(
        allocations.update().where(allocations.c.allocation_id == allocation_id).values(**values)
    )


async def waiting(
    conn: AsyncConnection, *, pledge_id: str | None = None, item_code: str | None = None
) -> list[Allocation]:
    """Approved allocations not planned yet, for the pledge or item that has just become known."""
    query = sa.select(allocations).where(allocations.c.status == "approved")
    if pledge_id is not None:
        query = query.where(allocations.c.pledge_id == pledge_id)
    if item_code is not None:
        query = query.where(allocations.c.item_code == item_code)
    rows = await conn.execute(query.order_by(allocations.c.allocation_id))
    return [_allocation(row) for row in rows]


async def record_pledge(conn: AsyncConnection, pledge_id: str, donor: str) -> None:
    await upsert(conn, pledges, {"pledge_id": pledge_id}, {"donor": donor.upper()})


async def donor_of(conn: AsyncConnection, pledge_id: str) -> str | None:
    donor = await conn.scalar(sa.select(pledges.c.donor).where(pledges.c.pledge_id == pledge_id))
    return None if donor is None else str(donor)


async def record_item(conn: AsyncConnection, item_code: str, eum_class: str) -> None:
    await upsert(conn, items, {"item_code": item_code}, {"eum_class": eum_class})


async def eum_class_of(conn: AsyncConnection, item_code: str) -> EumClass | None:
    """The item's end-use-monitoring class, or None while the item is unknown."""
    base = base_items().get(item_code)
    if base is not None:
        return base.eum_class
    added = await conn.scalar(sa.select(items.c.eum_class).where(items.c.item_code == item_code))
    if added is None:
        return None
    # An unknown class is treated as the strictest: serials are asked for rather than skipped.
    return next((c for c in EUM_CLASSES if c == added), "enhanced")


def _allocation(row: sa.Row[tuple[object, ...]]) -> Allocation:
    m = row._mapping
    return Allocation(
        allocation_id=str(m["allocation_id"]),
        requirement_id=str(m["requirement_id"]),
        pledge_id=str(m["pledge_id"]),
        item_code=str(m["item_code"]),
        quantity=int(m["quantity"]),
        hub=str(m["hub"]),
        handover_by=m["handover_by"],
        status=str(m["status"]),
        shipment_id=None if m["shipment_id"] is None else str(m["shipment_id"]),
    )
