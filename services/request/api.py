"""The request service's routes: parse, authorize, hand the command to its handler (one line
each, `handle_command`) or answer from `queries`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.request import commands, handlers, imports, queries
from services.request.access import POLICY
from services.request.schemas import (
    AmendIn,
    CatalogueItemIn,
    CatalogueItemPage,
    CommandOut,
    ConfirmIn,
    DecidedOut,
    DecisionIn,
    DecisionView,
    EndorseIn,
    ImportOut,
    PledgeIn,
    PledgeView,
    ReasonIn,
    ReduceIn,
    RequirementIn,
    RequirementView,
    StreamOut,
)
from shared.auth import Principal
from shared.catalogue import CAPABILITIES
from shared.web.commands import handle_command
from shared.web.content import JsonBody, require_content_type
from shared.web.dead_letters import dead_letter_router
from shared.web.deps import Authorize, RuntimeDep
from shared.web.paging import DEFAULT_LIMIT, Limit, Offset, paged
from shared.web.ratelimit import RateLimit

router = APIRouter()
# The dead letters of the service's consumers (`aidline dlq`).
dead_letter_routes = dead_letter_router(POLICY)

Id = Annotated[str, Path(min_length=1, max_length=100, description="e.g. REQ-01J…")]
CsvBody = Annotated[None, Depends(require_content_type("text/csv", "application/csv"))]


def etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


# -- requirements ------------------------------------------------------------------------


@router.post(
    "/requirements",
    tags=["requirements"],
    status_code=201,
    response_model=CommandOut,
)
async def submit_requirement(
    request: Request,
    body: RequirementIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "requirement.submit"))],
    _json: JsonBody,
) -> JSONResponse:
    """State a need (recipient)."""
    return await handle_command(
        request,
        handlers.submit_requirement,
        commands.SubmitRequirement(**body.model_dump()),
        append_only=True,
    )


@router.get("/requirements/{requirement_id}", tags=["requirements"])
async def get_requirement(
    requirement_id: Id,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "requirement.read"))],
    runtime: RuntimeDep,
    response: Response,
) -> RequirementView:
    view = await queries.requirement(runtime.store, principal, requirement_id)
    etag(response, view.version)
    return view


@router.post(
    "/requirements/{requirement_id}/endorse",
    tags=["requirements"],
    response_model=DecidedOut,
)
async def endorse_requirement(
    request: Request,
    requirement_id: Id,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "requirement.endorse"))],
    _json: JsonBody,
    body: Annotated[EndorseIn | None, Body()] = None,
) -> JSONResponse:
    """Endorse a need as a one-off forum decision (recorded as its own `DEC-…`)."""
    return await handle_command(
        request,
        handlers.endorse_requirement,
        commands.EndorseRequirement(
            requirement_id, **(body or EndorseIn()).model_dump(exclude_none=True)
        ),
        append_only=True,
    )


@router.post(
    "/requirements/{requirement_id}/amend",
    tags=["requirements"],
    response_model=CommandOut,
)
async def amend_requirement(
    request: Request,
    requirement_id: Id,
    body: AmendIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "requirement.amend"))],
    _json: JsonBody,
) -> JSONResponse:
    """Change quantity, priority or needed-by (recipient); the forum may change priority only."""
    return await handle_command(
        request,
        handlers.amend_requirement,
        commands.AmendRequirement(requirement_id, **body.model_dump()),
        append_only=True,
    )


@router.post(
    "/requirements/{requirement_id}/cancel",
    tags=["requirements"],
    response_model=CommandOut,
)
async def cancel_requirement(
    request: Request,
    requirement_id: Id,
    body: ReasonIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "requirement.cancel"))],
    _json: JsonBody,
) -> JSONResponse:
    return await handle_command(
        request,
        handlers.cancel_requirement,
        commands.CancelRequirement(requirement_id, body.reason),
        append_only=True,
    )


# -- pledges -----------------------------------------------------------------------------


@router.post("/pledges", tags=["pledges"], status_code=201, response_model=CommandOut)
async def announce_pledge(
    request: Request,
    body: PledgeIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "pledge.announce"))],
    _json: JsonBody,
) -> JSONResponse:
    """Pledge for your own nation (donor): `donor` must be your token's nation."""
    return await handle_command(
        request,
        handlers.announce_pledge,
        commands.AnnouncePledge(**body.model_dump()),
        append_only=True,
    )


@router.get("/pledges/{pledge_id}", tags=["pledges"])
async def get_pledge(
    pledge_id: Id,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "pledge.read"))],
    runtime: RuntimeDep,
    response: Response,
) -> PledgeView:
    view = await queries.pledge(runtime.store, principal, pledge_id)
    etag(response, view.version)
    return view


@router.post(
    "/pledges/{pledge_id}/confirm",
    tags=["pledges"],
    response_model=DecidedOut,
)
async def confirm_pledge(
    request: Request,
    pledge_id: Id,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "pledge.confirm"))],
    _json: JsonBody,
    body: Annotated[ConfirmIn | None, Body()] = None,
) -> JSONResponse:
    """Confirm a pledge as a one-off forum decision: it goes to execution."""
    return await handle_command(
        request,
        handlers.confirm_pledge,
        commands.ConfirmPledge(pledge_id, **(body or ConfirmIn()).model_dump(exclude_none=True)),
        append_only=True,
    )


@router.post(
    "/pledges/{pledge_id}/reduce",
    tags=["pledges"],
    response_model=CommandOut,
)
async def reduce_pledge(
    request: Request,
    pledge_id: Id,
    body: ReduceIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "pledge.reduce"))],
    _json: JsonBody,
) -> JSONResponse:
    """Lower your nation's pledge to a new total."""
    return await handle_command(
        request,
        handlers.reduce_pledge,
        commands.ReducePledge(pledge_id, body.quantity),
        append_only=True,
    )


@router.post(
    "/pledges/{pledge_id}/withdraw",
    tags=["pledges"],
    response_model=CommandOut,
)
async def withdraw_pledge(
    request: Request,
    pledge_id: Id,
    body: ReasonIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "pledge.withdraw"))],
    _json: JsonBody,
) -> JSONResponse:
    return await handle_command(
        request,
        handlers.withdraw_pledge,
        commands.WithdrawPledge(pledge_id, body.reason),
        append_only=True,
    )


# -- decisions ---------------------------------------------------------------------------


@router.post(
    "/decisions",
    tags=["decisions"],
    status_code=201,
    response_model=CommandOut,
)
async def record_decision(
    request: Request,
    body: DecisionIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "decision.record"))],
    _json: JsonBody,
) -> JSONResponse:
    """One meeting's endorsements and confirmations, stored atomically: all or nothing."""
    return await handle_command(
        request,
        handlers.record_decision,
        commands.RecordDecision(
            body.meeting_date,
            body.reference,
            endorse=[commands.Endorsement(e.requirement_id, e.priority) for e in body.endorse],
            confirm=body.confirm,
        ),
        append_only=True,
    )


@router.get("/decisions/{decision_id}", tags=["decisions"])
async def get_decision(
    decision_id: Id,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "decision.read"))],
    runtime: RuntimeDep,
    response: Response,
) -> DecisionView:
    view = await queries.decision(runtime.store, principal, decision_id)
    etag(response, view.version)
    return view


# -- catalogue ---------------------------------------------------------------------------


@router.get("/catalogue/items", tags=["catalogue"], response_model=CatalogueItemPage)
async def list_items(
    request: Request,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "catalogue.read"))],
    runtime: RuntimeDep,
    capability: Annotated[Literal[CAPABILITIES] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> JSONResponse:
    """The base catalogue and the items admins added, by item code."""
    every = await queries.items(runtime.store, capability)
    items = [item.model_dump(mode="json") for item in every[offset : offset + limit]]
    return paged(request, items, total=len(every), limit=limit, offset=offset)


@router.post(
    "/catalogue/items",
    tags=["catalogue"],
    status_code=201,
    response_model=CommandOut,
)
async def add_item(
    request: Request,
    body: CatalogueItemIn,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "catalogue.add"))],
    _json: JsonBody,
) -> JSONResponse:
    """Add an item (admin); published as `catalogue.item_added`."""
    return await handle_command(
        request, handlers.add_catalogue_item, commands.AddCatalogueItem(**body.model_dump())
    )


# -- imports -----------------------------------------------------------------------------

CSV_EXAMPLE = (
    "donor,item_code,quantity,source,available_from,value_eur,source_url\n"
    "PL,ART-155-HE,5000,stock,2030-01-15,22500000,https://www.gov.pl/web/national-defence\n"
    "de,AD-IRIST-SLM,1,procurement,2030-06-01,,\n"
)


@router.post(
    "/imports/pledges",
    tags=["imports"],
    dependencies=[Depends(RateLimit())],  # a flood of big files would starve the service
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        }
    },
)
async def import_pledges(
    request: Request,
    principal: Annotated[Principal, Depends(Authorize(POLICY, "imports.pledges"))],
    _csv: CsvBody,
) -> JSONResponse:
    """Pledges from CSV: one result per row; bad rows are reported and not stored; re-sending
    the file stores nothing twice (a row's pledge id is derived from its content)."""
    return await handle_command(
        request,
        handlers.import_pledges,
        commands.ImportPledges(imports.rows(await request.body())),
    )


# -- history -----------------------------------------------------------------------------


@router.get("/streams/{stream_id}/events", tags=["history"])
async def stream_events(
    stream_id: Annotated[str, Path(min_length=1, max_length=200)],
    principal: Annotated[Principal, Depends(Authorize(POLICY, "streams.read"))],
    runtime: RuntimeDep,
    after_version: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # stream_version: INTEGER
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> StreamOut:
    """A stream's events in order (any `REQ-`, `PLG-`, `DEC-` or `catalogue-` stream)."""
    return await queries.history(runtime.store, principal, stream_id, after_version, limit)
