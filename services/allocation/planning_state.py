"""The planning state as the planner sees it: the tables (tables.py) read into the domain's
values — an item family's needs, offers and allocations, the item graph, and what the coverage
explanation weighs."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation.domain import (
    FamilyState,
    ItemGraph,
    Need,
    Offer,
    Placed,
    Recorded,
)
from services.allocation.tables import (
    allocations,
    catalogue_items,
    pledges,
    requirements,
    shortfalls,
)
from shared.catalogue import Item, base_items

LIVE = ("proposed", "approved")


# -- catalogue ---------------------------------------------------------------------------


async def item_graph(conn: AsyncConnection) -> ItemGraph:
    """The base catalogue plus the items admins added (`catalogue.item_added`)."""
    items = dict(base_items())
    for row in await conn.execute(sa.select(catalogue_items)):
        items[row.item_code] = Item(
            code=row.item_code,
            name=row.name,
            capability=row.capability,
            unit=row.unit,
            eum_class=row.eum_class,
            substitutes=tuple(row.substitutes),
        )
    return ItemGraph(items.values())


# -- planner input -----------------------------------------------------------------------


def _need(row: Any) -> Need:
    return Need(
        row.requirement_id,
        row.item_code,
        int(row.quantity),
        int(row.priority),
        row.needed_by,
        row.status,
        row.status_reason,
        row.decision_id,
    )


def _offer(row: Any) -> Offer:
    return Offer(
        row.pledge_id,
        row.item_code,
        int(row.quantity) - int(row.lost),
        row.available_from,
        row.donor,
        row.status,
        row.status_reason,
        row.decision_id,
    )


def _placed(row: Any) -> Placed:
    approved_by = row.approved_by if row.status == "approved" else None
    return Placed(
        row.allocation_id,
        row.requirement_id,
        row.pledge_id,
        row.item_code,
        int(row.quantity) - int(row.lost),
        approved_by,
        row.hub,
        row.handover_by,
    )


# The planner's queries, built once: built per call, each `in_` made its expressions anew, and
# they are reference cycles left to the garbage collector (about one expanding parameter per
# event in a catch-up, measured with gc.DEBUG_SAVEALL).
_CODES: sa.BindParameter[list[str]] = sa.bindparam("codes", expanding=True)
_LIVE_IN_FAMILY = sa.select(allocations).where(
    allocations.c.item_code.in_(_CODES), allocations.c.status.in_(LIVE)
)
_REJECTED_IN_FAMILY = sa.select(allocations.c.requirement_id, allocations.c.pledge_id).where(
    allocations.c.item_code.in_(_CODES), allocations.c.status == "rejected"
)
_SHORTFALLS_IN_FAMILY = (
    sa.select(shortfalls)
    .join(requirements, requirements.c.requirement_id == shortfalls.c.requirement_id)
    .where(requirements.c.item_code.in_(_CODES))
)
_NEEDS_IN_FAMILY = sa.select(requirements).where(
    requirements.c.item_code.in_(_CODES),
    sa.or_(
        requirements.c.status == "endorsed",
        requirements.c.requirement_id.in_(sa.bindparam("served", expanding=True)),
    ),
)
_OFFERS_IN_FAMILY = sa.select(pledges).where(
    pledges.c.item_code.in_(_CODES),
    sa.or_(
        pledges.c.status == "confirmed",
        pledges.c.pledge_id.in_(sa.bindparam("drawn_on", expanding=True)),
    ),
)


async def family_state(conn: AsyncConnection, items: Collection[str]) -> FamilyState:
    """Everything the planner needs about the family of `items` (see `FamilyState`)."""
    codes = {"codes": sorted(items)}
    live = [_placed(r) for r in await conn.execute(_LIVE_IN_FAMILY, codes)]
    rejected = {
        (r.requirement_id, r.pledge_id) for r in await conn.execute(_REJECTED_IN_FAMILY, codes)
    }
    short = {
        r.requirement_id: Recorded(int(r.open_quantity), r.reason)
        for r in await conn.execute(_SHORTFALLS_IN_FAMILY, codes)
    }
    wanted_needs = {p.requirement_id for p in live} | {
        k for k, v in short.items() if v.open_quantity
    }
    needs = [
        _need(r)
        for r in await conn.execute(_NEEDS_IN_FAMILY, codes | {"served": sorted(wanted_needs)})
    ]
    drawn_on = sorted({p.pledge_id for p in live})
    offers = [
        _offer(r) for r in await conn.execute(_OFFERS_IN_FAMILY, codes | {"drawn_on": drawn_on})
    ]
    return FamilyState(needs, offers, live, frozenset(rejected), short)


async def open_item_codes(conn: AsyncConnection) -> set[str]:
    """Items with anything to plan: endorsed needs, confirmed pledges, live allocations."""
    queries = [
        sa.select(requirements.c.item_code).where(requirements.c.status == "endorsed"),
        sa.select(pledges.c.item_code).where(pledges.c.status == "confirmed"),
        sa.select(allocations.c.item_code).where(allocations.c.status.in_(LIVE)),
    ]
    codes: set[str] = set()
    for query in queries:
        codes.update((await conn.execute(query.distinct())).scalars())
    return codes


# -- coverage ------------------------------------------------------------------------------


async def requirement(conn: AsyncConnection, requirement_id: str) -> Need | None:
    row = (
        await conn.execute(
            sa.select(requirements).where(requirements.c.requirement_id == requirement_id)
        )
    ).first()
    return _need(row) if row is not None else None


async def coverage_inputs(
    conn: AsyncConnection, need: Need, items: Iterable[str]
) -> tuple[list[Offer], list[Placed], dict[str, Need], frozenset[tuple[str, str]], Recorded | None]:
    """The family's pledges (any status), their live allocations and the needs those serve,
    the pairs rejected for this need, and its last shortfall."""
    codes = sorted(items)
    offers = [
        _offer(r)
        for r in await conn.execute(sa.select(pledges).where(pledges.c.item_code.in_(codes)))
    ]
    live = [
        _placed(r)
        for r in await conn.execute(
            sa.select(allocations).where(
                allocations.c.item_code.in_(codes), allocations.c.status.in_(LIVE)
            )
        )
    ]
    served = sorted({p.requirement_id for p in live})
    others = {
        r.requirement_id: _need(r)
        for r in await conn.execute(
            sa.select(requirements).where(requirements.c.requirement_id.in_(served))
        )
    }
    rejected = frozenset(
        (r.requirement_id, r.pledge_id)
        for r in await conn.execute(
            sa.select(allocations.c.requirement_id, allocations.c.pledge_id).where(
                allocations.c.requirement_id == need.id, allocations.c.status == "rejected"
            )
        )
    )
    row = (
        await conn.execute(sa.select(shortfalls).where(shortfalls.c.requirement_id == need.id))
    ).first()
    recorded = Recorded(int(row.open_quantity), row.reason) if row is not None else None
    return offers, live, others, rejected, recorded
