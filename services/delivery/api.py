"""The delivery service's routes (DESIGN.md §5): thin — parse, authorize, call a handler."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.delivery import batch, handlers, listing
from services.delivery.access import POLICY
from services.delivery.commands import (
    Arrive,
    Delay,
    Depart,
    Dispatch,
    Handover,
    Inspect,
    Milestone,
    MilestoneBatch,
    Receive,
    ReportLoss,
)
from services.delivery.domain import Status
from shared.auth import Principal, Role
from shared.auth.visibility import redact, shipment_view
from shared.commands import CommandResult, ensure_version
from shared.domain import NotFound
from shared.eventstore import Transaction
from shared.runtime import ServiceRuntime
from shared.web.commands import expected_version, run_command
from shared.web.deps import Authorize, RuntimeDep
from shared.web.problems import Problem
from shared.web.ratelimit import RateLimit

router = APIRouter(tags=["shipments"])

ShipmentId = Annotated[str, Path(min_length=1, max_length=200)]
HubFilter = Annotated[str | None, Query(min_length=1, max_length=50)]


# -- operational security -----------------------------------------------------------------------


def _only_own_nation(principal: Principal) -> str | None:
    """The donor filter for callers who see nothing but their own nation's shipments."""
    others = (Role.PLANNER, Role.RECIPIENT, Role.HUB, Role.FORUM, Role.ADMIN)
    if principal.has(Role.DONOR) and not principal.has(*others):
        return principal.nation or ""
    return None


def _shown(principal: Principal, view: dict[str, Any]) -> dict[str, Any] | None:
    """The shipment as the caller may see it (shared.auth.visibility), or None: aggregates only."""
    seen = shipment_view(principal, donor=view["donor"], hub=view["hub"])
    return None if seen == "aggregate" else redact(view, seen)


# -- reading ------------------------------------------------------------------------------------


@router.get("/shipments", summary="Shipments, filtered by status and hub, a page at a time")
async def list_shipments(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.list"))],
    status: Status | None = None,
    hub: HubFilter = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    async with runtime.db.engine.connect() as conn:
        found = await listing.page(
            conn,
            status=status.value if status else None,
            hub=hub,
            donor=_only_own_nation(principal),
            limit=limit,
            offset=offset,
        )
    items = [shown for view in found.items if (shown := _shown(principal, view)) is not None]
    return {"items": items, "total": found.total, "limit": limit, "offset": offset}


@router.get("/shipments/summary", summary="Shipments and quantities per hub and status")
async def shipment_summary(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.summary"))],
    hub: HubFilter = None,
) -> dict[str, Any]:
    async with runtime.db.engine.connect() as conn:
        return {"groups": await listing.summary(conn, hub)}


@router.get("/shipments/{shipment_id}", summary="One shipment")
async def get_shipment(
    shipment_id: ShipmentId,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.read"))],
) -> JSONResponse:
    async with runtime.db.engine.connect() as conn:
        view = await listing.find(conn, shipment_id)
    if view is None:
        raise NotFound(f"There is no shipment {shipment_id}.")
    shown = _shown(principal, view)
    if shown is None:
        raise Problem(
            403,
            "Forbidden",
            f"Shipment {shipment_id} is not yours to see: your role sees totals only "
            "(GET /shipments/summary), or the shipment is another nation's or another hub's.",
            kind="forbidden-shipment",
        )
    return JSONResponse(shown, headers={"ETag": f'"{view["version"]}"'})


# -- milestones ---------------------------------------------------------------------------------


async def _record(
    request: Request,
    runtime: ServiceRuntime,
    shipment_id: str,
    command: Milestone,
    principal: Principal,
) -> JSONResponse:
    async def handler(tx: Transaction) -> CommandResult:
        return await handlers.record_milestone(
            tx,
            shipment_id,
            command,
            principal,
            reported_on=datetime.now(UTC).date(),
            precondition=partial(ensure_version, expected_version(request)),
        )

    return await run_command(request, runtime.store, handler)


@router.post("/shipments/{shipment_id}/dispatch", summary="The donor has dispatched it")
async def dispatch(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    body: Dispatch,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.dispatch"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, body, principal)


@router.post("/shipments/{shipment_id}/arrive", summary="It has arrived at the hub")
async def arrive(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.arrive"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, Arrive(), principal)


@router.post("/shipments/{shipment_id}/inspect", summary="Inspected at the hub: passed or held")
async def inspect(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    body: Inspect,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.inspect"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, body, principal)


@router.post("/shipments/{shipment_id}/depart", summary="It has left the hub")
async def depart(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.depart"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, Depart(), principal)


@router.post("/shipments/{shipment_id}/handover", summary="Handed over at the border")
async def handover(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    body: Handover,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.handover"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, body, principal)


@router.post("/shipments/{shipment_id}/receive", summary="The recipient confirms receipt")
async def receive(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.receive"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, Receive(), principal)


@router.post("/shipments/{shipment_id}/delay", summary="Delayed, with a new ETA")
async def delay(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    body: Delay,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.delay"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, body, principal)


@router.post("/shipments/{shipment_id}/report-loss", summary="Some or all of it was lost")
async def report_loss(
    request: Request,
    runtime: RuntimeDep,
    shipment_id: ShipmentId,
    body: ReportLoss,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.report_loss"))],
) -> JSONResponse:
    return await _record(request, runtime, shipment_id, body, principal)


@router.post(
    "/milestones/batch",
    summary="Many milestones at once; one result per row",
    dependencies=[Depends(RateLimit())],  # uploads are occasional; a flood is a fault
)
async def milestones_batch(
    request: Request,
    runtime: RuntimeDep,
    body: MilestoneBatch,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "milestones.batch"))],
) -> JSONResponse:
    async def handler(tx: Transaction) -> CommandResult:
        outcome = await batch.apply_batch(tx, body.rows, principal)
        return CommandResult(id="milestones.batch", version=0, body=outcome)

    return await run_command(request, runtime.store, handler)
