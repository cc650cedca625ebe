"""The allocation service's routes (DESIGN.md §5): parse, authorize, hand over to a handler or
a query."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.allocation import commands, handlers, queries
from services.allocation.access import POLICY
from services.allocation.planning import Planning
from services.allocation.schemas import (
    AllocationOut,
    AllocationPage,
    CoverageOut,
    RejectBody,
    Status,
)
from shared.auth import Principal
from shared.web.commands import handle_command
from shared.web.dead_letters import dead_letter_router
from shared.web.deps import Authorize, RuntimeDep
from shared.web.paging import DEFAULT_LIMIT, Limit, Offset, paged

router = APIRouter(tags=["allocation"])
# The dead letters of the service's consumers (`aidline dlq`).
dead_letter_routes = dead_letter_router(POLICY)

AllocationId = Annotated[str, Path(min_length=1, max_length=200)]


async def get_planning(request: Request) -> Planning:
    """The planning step the app was built with (`create_app(handler_deps=...)`): the coverage
    explanation judges dates by its policy."""
    planning: Planning = request.app.state.handler_deps
    return planning


PlanningDep = Annotated[Planning, Depends(get_planning)]


@router.post("/plan/run", summary="Re-plan every open item family (planner)")
async def run_plan(
    request: Request,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "plan.run"))],
) -> JSONResponse:
    return await handle_command(
        request, handlers.run_plan, commands.RunPlan(run_id=f"plan-{uuid.uuid4()}")
    )


@router.get(
    "/allocations", summary="Allocations, filtered and paginated", response_model=AllocationPage
)
async def list_allocations(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.read"))],
    requirement_id: Annotated[str | None, Query(max_length=200)] = None,
    pledge_id: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> JSONResponse:
    items, total = await queries.allocations(
        runtime.db,
        principal,
        requirement_id=requirement_id,
        pledge_id=pledge_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return paged(request, items, total=total, limit=limit, offset=offset)


@router.get(
    "/allocations/{allocation_id}",
    summary="One allocation (ETag: its version)",
    response_model=AllocationOut,
)
async def get_allocation(
    allocation_id: AllocationId,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.read"))],
) -> JSONResponse:
    out = await queries.allocation(runtime.db, principal, allocation_id)
    return JSONResponse(out.model_dump(mode="json"), headers={"ETag": f'"{out.version}"'})


@router.post("/allocations/{allocation_id}/approve", summary="Approve a proposal (planner)")
async def approve(
    allocation_id: AllocationId,
    request: Request,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.approve"))],
) -> JSONResponse:
    return await handle_command(request, handlers.approve, commands.Approve(allocation_id))


@router.post("/allocations/{allocation_id}/reject", summary="Reject a proposal (planner)")
async def reject(
    allocation_id: AllocationId,
    body: RejectBody,
    request: Request,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "allocations.reject"))],
) -> JSONResponse:
    return await handle_command(
        request, handlers.reject, commands.Reject(allocation_id, body.reason)
    )


@router.get(
    "/requirements/{requirement_id}/coverage",
    summary="Why a requirement is or is not covered",
)
async def coverage(
    requirement_id: Annotated[str, Path(min_length=1, max_length=200)],
    runtime: RuntimeDep,
    planning: PlanningDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "coverage.read"))],
) -> CoverageOut:
    return await queries.coverage(
        runtime.db, principal, requirement_id, lead_days=planning.policy.lead_days
    )
