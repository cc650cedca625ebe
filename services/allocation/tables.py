"""The allocation service's own state, beside its event store (schema `allocation`), and the
row reads and writes on it (planning_state.py reads it into the planner's values).

- `requirements`, `pledges`, `catalogue_items`, `shipments`: what the service learnt from the
  request and delivery topics, written by the consumer in the same transaction that records the
  event as processed (so each event has its effect exactly once).
- `allocations`, `shortfalls`: the current state of the service's own streams, written in the
  same transaction as the events they follow from; the planner reads them instead of replaying
  every stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation.domain import Allocation, Shortfall
from shared.db.rows import insert_new, upsert
from shared.eventstore.tables import Json

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
    # The forum decision that endorsed it (allocations carry it); NULL: not endorsed, or
    # endorsed before this column existed (migration 0006).
    sa.Column("decision_id", Id, nullable=True),
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
    # The forum decision that confirmed it; NULL as for requirements.decision_id.
    sa.Column("decision_id", Id, nullable=True),
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


# -- allocations and shortfalls ----------------------------------------------------------


async def save_allocation(conn: AsyncConnection, allocation: Allocation) -> None:
    """Make the allocation's row follow the aggregate (insert on proposal, update after)."""
    now = datetime.now(UTC)
    values = {
        "status": allocation.status,
        "reason": allocation.reason,
        "approved_by": allocation.approved_by,
        "version": allocation.version,
        "updated_at": now,
    }
    updated = await conn.execute(
        allocations.update().where(allocations.c.allocation_id == allocation.id).values(**values)
    )
    if updated.rowcount:
        return
    await conn.execute(
        allocations.insert().values(
            allocation_id=allocation.id,
            requirement_id=allocation.requirement_id,
            pledge_id=allocation.pledge_id,
            item_code=allocation.item_code,
            quantity=allocation.quantity,
            hub=allocation.hub,
            handover_by=allocation.handover_by,
            rationale=allocation.rationale,
            created_at=now,
            **values,
        )
    )


async def save_shortfall(conn: AsyncConnection, shortfall: Shortfall) -> None:
    values = {
        "open_quantity": shortfall.open_quantity,
        "reason": shortfall.reason,
        "updated_at": datetime.now(UTC),
    }
    key = shortfalls.c.requirement_id == shortfall.requirement_id
    if not (await conn.execute(shortfalls.update().where(key).values(**values))).rowcount:
        await conn.execute(
            shortfalls.insert().values(requirement_id=shortfall.requirement_id, **values)
        )


async def allocation_row(conn: AsyncConnection, allocation_id: str) -> Any:
    return (
        await conn.execute(
            sa.select(allocations).where(allocations.c.allocation_id == allocation_id)
        )
    ).first()


async def list_allocations(
    conn: AsyncConnection,
    *,
    requirement_id: str | None,
    pledge_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    conditions = []
    if requirement_id is not None:
        conditions.append(allocations.c.requirement_id == requirement_id)
    if pledge_id is not None:
        conditions.append(allocations.c.pledge_id == pledge_id)
    if status is not None:
        conditions.append(allocations.c.status == status)
    total = await conn.scalar(
        sa.select(sa.func.count()).select_from(allocations).where(*conditions)
    )
    rows = await conn.execute(
        sa.select(allocations)
        .where(*conditions)
        .order_by(allocations.c.created_at, allocations.c.allocation_id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


# -- what the consumer learns from the request and delivery topics -------------------------
# A need, pledge or shipment is inserted unless its row is there already (the event delivered
# again).


async def add_requirement(conn: AsyncConnection, requirement_id: str, **values: Any) -> None:
    await insert_new(conn, requirements, {"requirement_id": requirement_id, **values})


async def add_pledge(conn: AsyncConnection, pledge_id: str, **values: Any) -> None:
    await insert_new(conn, pledges, {"pledge_id": pledge_id, **values})


async def add_shipment(conn: AsyncConnection, shipment_id: str, **values: Any) -> None:
    await insert_new(conn, shipments, {"shipment_id": shipment_id, **values})


async def save_catalogue_item(
    conn: AsyncConnection, item_code: str, values: dict[str, Any]
) -> None:
    await upsert(conn, catalogue_items, {"item_code": item_code}, values)


async def update_requirement(
    conn: AsyncConnection, requirement_id: str, values: dict[str, Any], *, only_open: bool
) -> str | None:
    """The requirement's item code, or None when it is unknown (or closed, with `only_open`)."""
    query = requirements.update().where(requirements.c.requirement_id == requirement_id)
    if only_open:  # a cancelled or fulfilled requirement stays closed
        query = query.where(requirements.c.status.in_(("submitted", "endorsed")))
    row = (await conn.execute(query.values(values).returning(requirements.c.item_code))).first()
    return row.item_code if row is not None else None


async def update_pledge(
    conn: AsyncConnection, pledge_id: str, values: dict[str, Any]
) -> str | None:
    """The pledge's item code, or None when it is unknown or withdrawn."""
    query = (
        pledges.update()
        .where(pledges.c.pledge_id == pledge_id, pledges.c.status != "withdrawn")
        .values(values)
        .returning(pledges.c.item_code)
    )
    row = (await conn.execute(query)).first()
    return row.item_code if row is not None else None


async def allocation_item(conn: AsyncConnection, allocation_id: str) -> str | None:
    item: str | None = await conn.scalar(
        sa.select(allocations.c.item_code).where(allocations.c.allocation_id == allocation_id)
    )
    return item


async def shipment(conn: AsyncConnection, shipment_id: str) -> Any:
    return (
        await conn.execute(sa.select(shipments).where(shipments.c.shipment_id == shipment_id))
    ).first()


async def add_loss(
    conn: AsyncConnection, shipment_id: str, allocation_id: str, lost: int
) -> str | None:
    """Count `lost` units against the shipment, its allocation and that allocation's pledge;
    the allocation's item code, or None when the allocation is unknown here."""
    await conn.execute(
        shipments.update()
        .where(shipments.c.shipment_id == shipment_id)
        .values(lost=shipments.c.lost + lost)
    )
    allocation = (
        await conn.execute(
            allocations.update()
            .where(allocations.c.allocation_id == allocation_id)
            .values(lost=allocations.c.lost + lost)
            .returning(allocations.c.pledge_id, allocations.c.item_code)
        )
    ).first()
    if allocation is None:
        return None
    await conn.execute(
        pledges.update()
        .where(pledges.c.pledge_id == allocation.pledge_id)
        .values(lost=pledges.c.lost + lost)
    )
    item: str = allocation.item_code
    return item
