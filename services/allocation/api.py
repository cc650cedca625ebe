"""The allocation service's routes (DESIGN.md §5): thin — parse, authorize, call a handler."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.allocation import handlers, state
from services.allocation.access import POLICY
from services.allocation.domain import Coverage, explain
from services.allocation.handlers import Planning
from shared.auth import Principal
from shared.domain import NotFound
from shared.web.commands import expected_version, run_command
from shared.web.deps import Authorize, RuntimeDep

router = APIRouter(tags=["allocation"])

AllocationId = Annotated[str, Path(min_length=1, max_length=200)]
Status = Literal["proposed", "approved", "rejected", "cancelled"]


def get_planning(request: Request) -> Planning:
    planning: Planning = request.app.state.planning
    return planning


PlanningDep = Annotated[Planning, Depends(get_planning)]


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="Why the planner rejects it")


class AllocationOut(BaseModel):
    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    lost: int = Field(description="Units lost in transit (they no longer cover the need)")
    hub: str
    handover_by: date
    status: Status
    rationale: str
    reason: str | None
    approved_by: str | None
    version: int


class AllocationPage(BaseModel):
    items: list[AllocationOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def _out(row: Any) -> AllocationOut:
    return AllocationOut.model_validate(row._mapping, from_attributes=False)


@router.post("/plan/run", summary="Re-plan every open item family (planner)")
async def run_plan(
    request: Request,
    runtime: RuntimeDep,
    planning: PlanningDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "plan.run"))],
) -> JSONResponse:
    command = handlers.RunPlan(run_id=f"plan-{uuid.uuid4()}")
    return await run_command(
        request, runtime.store, lambda tx: handlers.run_plan(tx, command, principal, planning)
    )


@router.get("/allocations", summary="Allocations, filtered and paginated")
async def list_allocations(
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.read"))],
    requirement_id: Annotated[str | None, Query(max_length=200)] = None,
    pledge_id: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AllocationPage:
    async with runtime.db.engine.connect() as conn:
        rows, total = await state.list_allocations(
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


@router.get("/allocations/{allocation_id}", summary="One allocation (ETag: its version)")
async def get_allocation(
    allocation_id: AllocationId,
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.read"))],
) -> JSONResponse:
    async with runtime.db.engine.connect() as conn:
        row = await state.allocation_row(conn, allocation_id)
    if row is None:
        raise NotFound(f"allocation {allocation_id} does not exist")
    out = _out(row)
    return JSONResponse(out.model_dump(mode="json"), headers={"ETag": f'"{out.version}"'})


@router.post("/allocations/{allocation_id}/approve", summary="Approve a proposal (planner)")
async def approve(
    allocation_id: AllocationId,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.approve"))],
) -> JSONResponse:
    command = handlers.Approve(allocation_id, expected_version(request))
    return await run_command(
        request, runtime.store, lambda tx: handlers.approve(tx, command, principal)
    )


@router.post("/allocations/{allocation_id}/reject", summary="Reject a proposal (planner)")
async def reject(
    allocation_id: AllocationId,
    body: RejectBody,
    request: Request,
    runtime: RuntimeDep,
    planning: PlanningDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.reject"))],
) -> JSONResponse:
    command = handlers.Reject(allocation_id, body.reason, expected_version(request))
    return await run_command(
        request, runtime.store, lambda tx: handlers.reject(tx, command, principal, planning)
    )


@router.get(
    "/requirements/{requirement_id}/coverage",
    summary="Why a requirement is or is not covered",
    response_model=Coverage,
)
async def coverage(
    requirement_id: Annotated[str, Path(min_length=1, max_length=200)],
    runtime: RuntimeDep,
    planning: PlanningDep,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "coverage.read"))],
) -> dict[str, Any]:
    async with runtime.db.engine.connect() as conn:
        need = await state.requirement(conn, requirement_id)
        if need is None:
            raise NotFound(f"requirement {requirement_id} is not known to the allocation service")
        graph = await state.item_graph(conn)
        offers, placed, others, rejected, shortfall = await state.coverage_inputs(
            conn, need, graph.family(need.item_code)
        )
    explained = explain(
        need,
        offers,
        placed,
        others,
        rejected,
        graph,
        lead_days=planning.policy.lead_days,
        shortfall=shortfall,
    )
    return asdict(explained)
