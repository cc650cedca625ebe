"""The delivery service's own tables beside the event store, each written in the same transaction
as the events (or consumed message) it reflects, and the row reads and writes on them.

- `shipments`: what GET /shipments answers, kept in step with the shipment's events.
- `allocations`, `pledges`, `items`: what the service learns from other services' events to plan
  shipments (allocation details, each pledge's donor, items added to the catalogue at run time).
- `batch_rows`: the batch milestone rows already applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.delivery.domain import Shipment
from shared.catalogue import base_items
from shared.contracts.allocations import AllocationProposed
from shared.contracts.deliveries import EumClass
from shared.db.rows import upsert
from shared.domain import Metadata
from shared.eventstore.tables import Json

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
    # The lineage its shipment carries (NULL: not known; proposals recorded before 0005).
    sa.Column("endorsed_by_decision", sa.String(200), nullable=True),
    sa.Column("confirmed_by_decision", sa.String(200), nullable=True),
    # The `allocation.approved` event and its correlation: the cause of the shipment, also
    # when it is planned later (once the pledge's donor or the item is known).
    sa.Column("approval_event_id", sa.String(36), nullable=True),
    sa.Column("approval_correlation_id", sa.String(200), nullable=True),
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


# -- shipments ----------------------------------------------------------------------------------

# Operational security: where and when a shipment travels (DESIGN §5, docs/delivery.md).


def full_view(shipment: Shipment) -> dict[str, Any]:
    """Everything a fully entitled reader sees of a shipment (JSON-ready)."""
    handed_over = shipment.status.value in ("handed_over", "received")
    discrepancy = shipment.missing_serials or shipment.unexpected_serials
    return {
        "shipment_id": shipment.id,
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


async def save_shipment(conn: AsyncConnection, shipment: Shipment) -> None:
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
            "view": full_view(shipment),
            "updated_at": datetime.now(UTC),
        },
    )


# -- allocations, pledges, items ----------------------------------------------------------------

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
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None
    approval_event_id: str | None = None
    approval_correlation_id: str | None = None


async def record_proposal(conn: AsyncConnection, proposed: AllocationProposed) -> None:
    """Keep a proposal's details; a decided allocation keeps what it was decided on."""
    known = await find_allocation(conn, proposed.allocation_id)
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
            "endorsed_by_decision": proposed.endorsed_by_decision,
            "confirmed_by_decision": proposed.confirmed_by_decision,
            "status": "proposed",
            "updated_at": datetime.now(UTC),
        },
    )


async def find_allocation(conn: AsyncConnection, allocation_id: str) -> Allocation | None:
    query = sa.select(allocations).where(allocations.c.allocation_id == allocation_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _allocation(row)


async def set_allocation_status(
    conn: AsyncConnection,
    allocation_id: str,
    status: str,
    shipment_id: str | None = None,
    *,
    approval: Metadata | None = None,
) -> None:
    """`approval`: the `allocation.approved` event as cause (causation id = its id)."""
    values: dict[str, object] = {"status": status, "updated_at": datetime.now(UTC)}
    if shipment_id is not None:
        values["shipment_id"] = shipment_id
    if approval is not None:
        values["approval_event_id"] = approval.causation_id
        values["approval_correlation_id"] = approval.correlation_id
    await conn.execute(
        allocations.update().where(allocations.c.allocation_id == allocation_id).values(**values)
    )


async def waiting_allocations(
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
        endorsed_by_decision=m["endorsed_by_decision"],
        confirmed_by_decision=m["confirmed_by_decision"],
        approval_event_id=m["approval_event_id"],
        approval_correlation_id=m["approval_correlation_id"],
    )


# -- batch rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedRow:
    request_hash: str
    result: dict[str, Any]


async def applied_row(conn: AsyncConnection, scope: str, row_id: str) -> AppliedRow | None:
    """The row `scope` (the uploader) applied before under `row_id`, if any."""
    query = sa.select(batch_rows.c.request_hash, batch_rows.c.result).where(
        batch_rows.c.scope == scope, batch_rows.c.row_id == row_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else AppliedRow(row.request_hash, dict(row.result))


async def record_applied_row(
    conn: AsyncConnection, scope: str, row_id: str, request_hash: str, result: dict[str, Any]
) -> None:
    await conn.execute(
        batch_rows.insert().values(
            scope=scope,
            row_id=row_id,
            request_hash=request_hash,
            result=result,
            created_at=datetime.now(UTC),
        )
    )
