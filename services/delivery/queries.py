"""The read side: shipments from the shipments table, as each caller may see them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.delivery.access import only_own_nation
from services.delivery.tables import shipments
from shared.auth import Principal
from shared.auth.visibility import Resource, require_shown, shown_all
from shared.db import Database
from shared.domain import NotFound


async def shipments_page(
    db: Database,
    principal: Principal,
    *,
    status: str | None,
    hub: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of shipments (those the caller may see only as totals left out) and how many
    match."""
    where = [
        column == value
        for column, value in (
            (shipments.c.status, status),
            (shipments.c.hub, hub),
            (shipments.c.donor, only_own_nation(principal)),
        )
        if value is not None
    ]
    async with db.engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(shipments).where(*where))
        rows = await conn.execute(
            sa.select(shipments.c.view)
            .where(*where)
            .order_by(shipments.c.shipment_id)
            .limit(limit)
            .offset(offset)
        )
        views = [dict(row.view) for row in rows]
    items = shown_all(principal, Resource.SHIPMENT, views)
    return items, int(total or 0)


async def summary(db: Database, hub: str | None) -> dict[str, Any]:
    """Shipments and items per hub and status: the aggregate every role may see."""
    query = (
        sa.select(
            shipments.c.hub,
            shipments.c.status,
            sa.func.count().label("shipments"),
            sa.func.sum(shipments.c.quantity).label("quantity"),
        )
        .group_by(shipments.c.hub, shipments.c.status)
        .order_by(shipments.c.hub, shipments.c.status)
    )
    if hub is not None:
        query = query.where(shipments.c.hub == hub)
    async with db.engine.connect() as conn:
        groups = [
            {
                "hub": row.hub,
                "status": row.status,
                "shipments": int(row.shipments),
                "quantity": int(row.quantity or 0),
            }
            for row in await conn.execute(query)
        ]
    return {"groups": groups}


async def shipment(db: Database, principal: Principal, shipment_id: str) -> dict[str, Any]:
    """One shipment as the caller may see it (NotFound, or Forbidden when the table refuses)."""
    query = sa.select(shipments.c.view).where(shipments.c.shipment_id == shipment_id)
    async with db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"There is no shipment {shipment_id}.")
    view = dict(row.view)
    return require_shown(
        principal,
        Resource.SHIPMENT,
        view,
        what="This shipment",
        hub=view["hub"],
        donor=view["donor"],
    )
