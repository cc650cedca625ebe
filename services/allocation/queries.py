"""The read side the GET routes answer from: the allocations table, and coverage explained
from the planning state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from services.allocation import planning_state, tables
from services.allocation.domain import explain
from services.allocation.schemas import AllocationOut, AllocationPage, Status
from shared.db import Database
from shared.domain import NotFound


def _out(row: Any) -> AllocationOut:
    return AllocationOut.model_validate(row._mapping, from_attributes=False)


async def allocations(
    db: Database,
    *,
    requirement_id: str | None,
    pledge_id: str | None,
    status: Status | None,
    limit: int,
    offset: int,
) -> AllocationPage:
    async with db.engine.connect() as conn:
        rows, total = await tables.list_allocations(
            conn,
            requirement_id=requirement_id,
            pledge_id=pledge_id,
            status=status,
            limit=limit,
            offset=offset,
        )
    following = offset + len(rows)
    return AllocationPage(
        items=[_out(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=following if following < total else None,
    )


async def allocation(db: Database, allocation_id: str) -> AllocationOut:
    async with db.engine.connect() as conn:
        row = await tables.allocation_row(conn, allocation_id)
    if row is None:
        raise NotFound(f"allocation {allocation_id} does not exist")
    return _out(row)


async def coverage(db: Database, requirement_id: str, *, lead_days: int) -> dict[str, Any]:
    """Why the requirement is or is not covered (`domain.Coverage`, as a dict)."""
    async with db.engine.connect() as conn:
        need = await planning_state.requirement(conn, requirement_id)
        if need is None:
            raise NotFound(f"requirement {requirement_id} is not known to the allocation service")
        graph = await planning_state.item_graph(conn)
        offers, placed, others, rejected, shortfall = await planning_state.coverage_inputs(
            conn, need, graph.family(need.item_code)
        )
    explained = explain(
        need,
        offers,
        placed,
        others,
        rejected,
        graph,
        lead_days=lead_days,
        shortfall=shortfall,
    )
    return asdict(explained)
