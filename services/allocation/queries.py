"""The read side the GET routes answer from: the allocations table, and coverage explained
from the planning state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from services.allocation import planning_state, tables
from services.allocation.domain import explain
from services.allocation.schemas import AllocationOut, CoverageOut, Status
from shared.auth import Principal
from shared.auth.visibility import Resource, require_shown, shown_all
from shared.db import Database
from shared.domain import NotFound


async def allocations(
    db: Database,
    principal: Principal,
    *,
    requirement_id: str | None,
    pledge_id: str | None,
    status: Status | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of allocations as the caller may see them (typed views: a held-back field is
    null, `redacted` true), and how many match."""
    async with db.engine.connect() as conn:
        rows, total = await tables.list_allocations(
            conn,
            requirement_id=requirement_id,
            pledge_id=pledge_id,
            status=status,
            limit=limit,
            offset=offset,
        )
    items = [
        AllocationOut.model_validate(seen).model_dump(mode="json")
        for seen in shown_all(principal, Resource.PLANNING, (r._mapping for r in rows))
    ]
    return items, total


async def allocation(db: Database, principal: Principal, allocation_id: str) -> AllocationOut:
    async with db.engine.connect() as conn:
        row = await tables.allocation_row(conn, allocation_id)
    if row is None:
        raise NotFound(f"allocation {allocation_id} does not exist")
    seen = require_shown(principal, Resource.PLANNING, row._mapping, what="This allocation")
    return AllocationOut.model_validate(seen)


async def coverage(
    db: Database, principal: Principal, requirement_id: str, *, lead_days: int
) -> CoverageOut:
    """Why the requirement is or is not covered (`domain.Coverage`, as `principal` may see it)."""
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
    seen = require_shown(principal, Resource.PLANNING, asdict(explained), what="This coverage")
    return CoverageOut.model_validate(seen)
