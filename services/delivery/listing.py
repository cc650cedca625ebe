"""The shipments table: what GET /shipments answers, kept in step with the shipment's events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.delivery.domain import Shipment
from services.delivery.tables import shipments
from shared.db.rows import upsert

# Operational security: where and when a shipment travels (DESIGN §5, docs/delivery.md).


def view(shipment: Shipment) -> dict[str, Any]:
    """Everything a fully entitled reader sees of a shipment (JSON-ready)."""
    handed_over = shipment.status.value in ("handed_over", "received")
    discrepancy = shipment.missing_serials or shipment.unexpected_serials
    return {
        "id": shipment.id,
        "version": shipment.version,
        "status": shipment.status.value,
        "allocation_id": shipment.allocation_id,
        "requirement_id": shipment.requirement_id,
        "pledge_id": shipment.pledge_id,
        "donor": shipment.donor,
        "item_code": shipment.item_code,
        "eum_class": shipment.eum_class,
        "quantity": shipment.quantity,
        "lost": shipment.lost,
        "remaining": shipment.remaining,
        "hub": shipment.hub,
        "handover_point": shipment.handover_point,
        "mode": shipment.mode,
        "carrier_ref": shipment.carrier_ref,
        "eta": shipment.eta.isoformat() if shipment.eta else None,
        "delayed": shipment.eta is not None,
        "delay_reason": shipment.delay_reason,
        "inspection_notes": shipment.inspection_notes,
        "handover": (
            {
                "received_good": shipment.received_good,
                "damaged": shipment.damaged,
                "short": shipment.short,
            }
            if handed_over
            else None
        ),
        "serials": shipment.serials,
        "lost_serials": shipment.lost_serials,
        "handover_serials": shipment.handover_serials,
        "eum_discrepancy": (
            {"missing": shipment.missing_serials, "unexpected": shipment.unexpected_serials}
            if discrepancy
            else None
        ),
        "cancel_reason": shipment.cancel_reason,
    }


async def save(conn: AsyncConnection, shipment: Shipment) -> None:
    await upsert(
        conn,
        shipments,
        {"shipment_id": shipment.id},
        {
            "status": shipment.status.value,
            "hub": shipment.hub,
            "donor": shipment.donor,
            "quantity": shipment.quantity,
            "version": shipment.version,
            "view": view(shipment),
            "updated_at": datetime.now(UTC),
        },
    )


async def find(conn: AsyncConnection, shipment_id: str) -> dict[str, Any] | None:
    query = sa.select(shipments.c.view).where(shipments.c.shipment_id == shipment_id)
    row = (await conn.execute(query)).first()
    return None if row is None else dict(row.view)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


async def page(
    conn: AsyncConnection,
    *,
    status: str | None,
    hub: str | None,
    donor: str | None,
    limit: int,
    offset: int,
) -> Page:
    where = [
        column == value
        for column, value in (
            (shipments.c.status, status),
            (shipments.c.hub, hub),
            (shipments.c.donor, donor),
        )
        if value is not None
    ]
    total = await conn.scalar(sa.select(sa.func.count()).select_from(shipments).where(*where))
    rows = await conn.execute(
        sa.select(shipments.c.view)
        .where(*where)
        .order_by(shipments.c.shipment_id)
        .limit(limit)
        .offset(offset)
    )
    return Page([dict(row.view) for row in rows], int(total or 0))


async def summary(conn: AsyncConnection, hub: str | None) -> list[dict[str, Any]]:
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
    return [
        {
            "hub": row.hub,
            "status": row.status,
            "shipments": int(row.shipments),
            "quantity": int(row.quantity or 0),
        }
        for row in await conn.execute(query)
    ]
