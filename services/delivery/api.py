"""The delivery service's routes (DESIGN.md §5): parse, authorize, hand to a handler or a query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.delivery import batch, handlers, queries, schemas
from services.delivery.access import POLICY
from services.delivery.domain import Status
from shared.auth import Principal
from shared.web.commands import handle_command
from shared.web.dead_letters import dead_letter_router
from shared.web.deps import Authorize, RuntimeDep
from shared.web.paging import DEFAULT_LIMIT, Limit, Offset, paged
from shared.web.ratelimit import RateLimit

router = APIRouter(tags=["shipments"])
# The dead letters of the service's consumers (`aidline dlq`).
dead_letter_routes = dead_letter_router(POLICY)

ShipmentId = Annotated[str, Path(min_length=1, max_length=200)]
HubFilter = Annotated[str | None, Query(min_length=1, max_length=50)]


# -- reading ------------------------------------------------------------------------------------


@router.get(
    "/shipments",
    summary="Shipments, filtered by status and hub, a page at a time",
    response_model=schemas.ShipmentPage,
)
async def list_shipments(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.list"))],
    status: Status | None = None,
    hub: HubFilter = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> JSONResponse:
    # As stored and shown (`paged` does not re-validate them through the model, which would
    # add what the caller's role may not see back as nulls).
    items, total = await queries.shipments_page(
        runtime.db,
        principal,
        status=status.value if status else None,
        hub=hub,
        limit=limit,
        offset=offset,
    )
    return paged(request, items, total=total, limit=limit, offset=offset)


@router.get("/shipments/summary", summary="Shipments and quantities per hub and status")
async def shipment_summary(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.summary"))],
    hub: HubFilter = None,
) -> dict[str, Any]:
    return await queries.summary(runtime.db, hub)


@router.get("/shipments/{shipment_id}", summary="One shipment", response_model=schemas.ShipmentView)
async def get_shipment(
    shipment_id: ShipmentId,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "shipments.read"))],
) -> JSONResponse:
    shown = await queries.shipment(runtime.db, principal, shipment_id)
    return JSONResponse(shown, headers={"ETag": f'"{shown["version"]}"'})


# -- milestones ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MilestoneRoute:
    """POST /shipments/{shipment_id}/<path>. A body without fields (arrive, depart, receive)
    is no body: the route takes none."""

    path: str
    body: type[schemas.MilestoneBody]
    rule: str
    summary: str


MILESTONE_ROUTES = (
    MilestoneRoute(
        "dispatch", schemas.Dispatch, "shipments.dispatch", "The donor has dispatched it"
    ),
    MilestoneRoute("arrive", schemas.Arrive, "shipments.arrive", "It has arrived at the hub"),
    MilestoneRoute(
        "inspect", schemas.Inspect, "shipments.inspect", "Inspected at the hub: passed or held"
    ),
    MilestoneRoute("depart", schemas.Depart, "shipments.depart", "It has left the hub"),
    MilestoneRoute("handover", schemas.Handover, "shipments.handover", "Handed over at the border"),
    MilestoneRoute(
        "receive", schemas.Receive, "shipments.receive", "The recipient confirms receipt"
    ),
    MilestoneRoute("delay", schemas.Delay, "shipments.delay", "Delayed, with a new ETA"),
    MilestoneRoute(
        "report-loss", schemas.ReportLoss, "shipments.report_loss", "Some or all of it was lost"
    ),
)


def _add_milestone_route(route: MilestoneRoute) -> None:
    async def record(
        request: Request, shipment_id: ShipmentId, body: schemas.MilestoneBody
    ) -> JSONResponse:
        return await handle_command(
            request,
            handlers.record_milestone,
            body.command(shipment_id, on=datetime.now(UTC).date()),
        )

    # FastAPI reads the body's schema from this annotation. A body without fields FastAPI
    # builds itself (a dependency without parameters), so that route takes no body.
    body = route.body
    record.__annotations__["body"] = body if body.model_fields else Annotated[body, Depends(body)]
    router.post(
        f"/shipments/{{shipment_id}}/{route.path}",
        name=route.path.replace("-", "_"),  # unique route names, and the operation ids as before
        summary=route.summary,
        dependencies=[Depends(Authorize(POLICY, route.rule))],
    )(record)


for _route in MILESTONE_ROUTES:
    _add_milestone_route(_route)


@router.post(
    "/milestones/batch",
    summary="Many milestones at once; one result per row",
    response_model=schemas.BatchOut,
    dependencies=[
        Depends(RateLimit()),  # uploads are occasional; a flood is a fault
        Depends(Authorize(POLICY, "milestones.batch")),
    ],
)
async def milestones_batch(request: Request, body: schemas.MilestoneBatch) -> JSONResponse:
    return await handle_command(request, batch.record_batch, body.command())
