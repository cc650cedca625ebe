"""Routes of the projection service: parse, authorize, ask `queries`, shape the answer."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncConnection
from sse_starlette import EventSourceResponse

from services.projection import handlers, queries, schemas
from services.projection.access import POLICY
from services.projection.as_of import LIVE, Tables, cutoff, tables_as_of
from services.projection.commands import Rebuild
from services.projection.domain import changes as change_kinds
from services.projection.domain.model import Status
from services.projection.generations import ReadModels
from services.projection.read_your_writes import AfterEvent
from services.projection.rebuild import Rebuilder
from services.projection.rendering import csv_response, json_response
from services.projection.settings import ProjectionSettings
from services.projection.stream import ClosingEventSourceResponse, EventStream, StreamAuthorize
from shared.auth import Principal, Role, mint_token
from shared.auth.visibility import (
    Resource,
    event_resource,
    require_shown,
    shown,
    shown_all,
    shown_event,
)
from shared.catalogue import hubs
from shared.web.commands import handle_command
from shared.web.dead_letters import dead_letter_router
from shared.web.deps import Authorize, RuntimeDep, from_loopback
from shared.web.paging import DEFAULT_LIMIT, Limit, Offset, paged
from shared.web.problems import Problem
from shared.web.ratelimit import RateLimit

STATIC = pathlib.Path(__file__).parent / "static"


def _read_models(runtime: RuntimeDep) -> ReadModels:
    models: ReadModels = runtime.read_models  # type: ignore[attr-defined]
    return models


async def _active(
    models: Annotated[ReadModels, Depends(_read_models)], _wait: AfterEvent
) -> AsyncIterator[AsyncConnection]:
    """A connection to the generation that answers (once `?after_event=` has been applied)."""
    async with models.current.db.engine.connect() as conn:
        yield conn


Models = Annotated[ReadModels, Depends(_read_models)]
Active = Annotated[AsyncConnection, Depends(_active)]


def _invalid_day(name: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{name}: {message}",
        kind="invalid-request",
        errors=[{"field": f"query.{name}", "message": message}],
    )


def _past_day(name: str, day: date) -> date:
    if day > datetime.now(UTC).date():
        raise _invalid_day(name, "a day in the future has no state yet; give today or earlier")
    return day


def _as_of(
    as_of: Annotated[
        date | None,
        Query(description="YYYY-MM-DD: the state at the end of that day (UTC, business time)"),
    ] = None,
) -> Tables:
    """The live tables, or (`?as_of=`) the tables as they stood at the end of that day."""
    return LIVE if as_of is None else tables_as_of(_past_day("as_of", as_of))


AsOf = Annotated[Tables, Depends(_as_of)]

# One alias per access rule, so each route names its rule in its signature.
AdminRebuild = Annotated[Principal, Depends(Authorize(POLICY, "admin.rebuild"))]
AdminStatus = Annotated[Principal, Depends(Authorize(POLICY, "admin.status"))]
AuditRead = Annotated[Principal, Depends(Authorize(POLICY, "audit.read"))]
BoardRead = Annotated[Principal, Depends(Authorize(POLICY, "board.read"))]
CapabilitiesGaps = Annotated[Principal, Depends(Authorize(POLICY, "capabilities.gaps"))]
ChangesRead = Annotated[Principal, Depends(Authorize(POLICY, "changes.read"))]
DecisionsRead = Annotated[Principal, Depends(Authorize(POLICY, "decisions.read"))]
DonorsLedger = Annotated[Principal, Depends(Authorize(POLICY, "donors.ledger"))]
EventsStream = Annotated[Principal, Depends(StreamAuthorize(POLICY, "events.stream"))]
# Whoever may read the stream may ask for a ticket to open it.
EventsStreamTicket = Annotated[Principal, Depends(Authorize(POLICY, "events.stream"))]
HubsRead = Annotated[Principal, Depends(Authorize(POLICY, "hubs.read"))]
ShipmentsTimeline = Annotated[Principal, Depends(Authorize(POLICY, "shipments.timeline"))]


router = APIRouter(tags=["read models"])


@router.get(
    "/board/requirements",
    summary="The requirement board (filters; ?format=csv)",
    response_model=schemas.BoardPage,
)
async def board(
    request: Request,
    principal: BoardRead,
    conn: Active,
    tables: AsOf,
    capability: str | None = None,
    status: Status | None = None,
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    format: Literal["json", "csv"] = "json",
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response:
    rows = await queries.board(
        conn,
        capability=capability,
        status=status,
        priority=priority,
        limit=limit,
        offset=offset,
        tables=tables,
    )
    rows = shown_all(principal, Resource.AGGREGATE, rows)
    if format == "csv":
        return csv_response(rows, queries.CSV_FIELDS, "requirements.csv")
    total = await queries.board_total(
        conn, capability=capability, status=status, priority=priority, tables=tables
    )
    return paged(request, rows, total=total, limit=limit, offset=offset, render=json_response)


@router.get(
    "/board/requirements/{requirement_id}",
    summary="One requirement on the board",
    response_model=schemas.RequirementDetail,
)
async def requirement(
    requirement_id: str, principal: BoardRead, conn: Active, tables: AsOf
) -> JSONResponse:
    found = await queries.requirement(conn, requirement_id, tables)
    if found is None:
        raise Problem(404, "Not found", f"No requirement {requirement_id} on the board.")
    found["allocations"] = shown_all(principal, Resource.PLANNING, found["allocations"])
    found["shipments"] = shown_all(principal, Resource.SHIPMENT, found["shipments"])
    return json_response(require_shown(principal, Resource.AGGREGATE, found, what="It"))


@router.get(
    "/donors/{nation}/ledger",
    summary="A donor nation's ledger",
    response_model=schemas.DonorLedger,
)
async def donor_ledger(
    nation: Annotated[str, Path(pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2")],
    principal: DonorsLedger,
    conn: Active,
    tables: AsOf,
) -> JSONResponse:
    ledger = await queries.donor_ledger(conn, nation.upper(), tables)
    return json_response(require_shown(principal, Resource.AGGREGATE, ledger, what="It"))


@router.get(
    "/capabilities/gaps",
    summary="Need vs pledged vs allocated vs delivered",
    response_model=schemas.CapabilityGaps,
)
async def capability_gaps(
    principal: CapabilitiesGaps,
    conn: Active,
    tables: AsOf,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONResponse:
    gaps = await queries.capability_gaps(conn, top, tables)
    return json_response(require_shown(principal, Resource.AGGREGATE, gaps, what="It"))


@router.get(
    "/decisions",
    summary="The forum's decisions: when, what, progress (?format=csv)",
    response_model=schemas.DecisionPage,
)
async def decisions(
    request: Request,
    principal: DecisionsRead,
    conn: Active,
    tables: AsOf,
    format: Literal["json", "csv"] = "json",
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response:
    items, total = await queries.decisions(conn, limit=limit, offset=offset, tables=tables)
    items = shown_all(principal, Resource.AGGREGATE, items)
    if format == "csv":
        return csv_response(items, queries.DECISION_CSV_FIELDS, "decisions.csv")
    return paged(request, items, total=total, limit=limit, offset=offset, render=json_response)


@router.get(
    "/decisions/{decision_id}/execution",
    summary="A decision followed to the border: quantities per step, days, what is stuck and why",
    response_model=schemas.DecisionExecution,
)
async def decision_execution(
    decision_id: str,
    principal: DecisionsRead,
    conn: Active,
    tables: AsOf,
    format: Literal["json", "csv"] = "json",
) -> Response:
    found = await queries.decision_execution(conn, decision_id, tables)
    if found is None:
        raise Problem(404, "Not found", f"No decision {decision_id} recorded.")
    # Figures and stuck states for every reader; a shipment only as the table shows it.
    found["lines"] = shown_all(principal, Resource.PLANNING, found["lines"])
    found["shipments"] = shown_all(principal, Resource.SHIPMENT, found["shipments"])
    answer = require_shown(principal, Resource.AGGREGATE, found, what="It")
    if format == "csv":
        return csv_response(answer["lines"], queries.EXECUTION_CSV_FIELDS, "decision.csv")
    return json_response(answer)


def _change_line(principal: Principal, line: dict[str, Any]) -> dict[str, Any]:
    """A line as `principal` may see it: a shipment's as the table shows that shipment, else
    as its figures under the requirement it serves; a planning record's as planning records."""
    if line["kind"] in change_kinds.SHIPMENT_KINDS:
        seen = shown(
            principal, Resource.SHIPMENT, line, hub=line.get("hub"), donor=line.get("nation")
        )
        if seen is not None:
            return seen
        return require_shown(principal, Resource.AGGREGATE, change_kinds.aggregate(line), what="It")
    return require_shown(principal, Resource.PLANNING, line, what="It")


@router.get(
    "/changes",
    summary="What changed between two days (business time): the forum's meeting pack (CSV too)",
    response_model=schemas.ChangesPage,
)
@router.get(
    "/changes.csv", summary="What changed between two days, as CSV", include_in_schema=False
)
async def changes(
    request: Request,
    principal: ChangesRead,
    conn: Active,
    from_: Annotated[date, Query(alias="from", description="YYYY-MM-DD, included")],
    to: Annotated[
        date | None, Query(description="YYYY-MM-DD, included; default today (UTC)")
    ] = None,
    format: Literal["json", "csv"] | None = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Response:
    last = _past_day("to", to or datetime.now(UTC).date())
    if from_ > last:
        raise _invalid_day("from", f"must be on or before to ({last.isoformat()})")
    if (last - from_).days >= change_kinds.MAX_DAYS:
        raise _invalid_day("from", f"at most {change_kinds.MAX_DAYS} days before to")
    start = cutoff(from_ - timedelta(days=1))
    lines, total = await queries.changes(conn, start, cutoff(last), limit=limit, offset=offset)
    lines = [_change_line(principal, line) for line in lines]
    as_csv = format == "csv" or (
        format is None
        and (request.url.path.endswith(".csv") or "text/csv" in request.headers.get("accept", ""))
    )
    if as_csv:
        return csv_response(lines, change_kinds.FIELDS, "changes.csv")
    return paged(
        request,
        lines,
        total=total,
        limit=limit,
        offset=offset,
        extra={"from": from_, "to": last},
        render=json_response,
    )


@router.get("/hubs", summary="The logistics hubs", response_model=schemas.HubPage)
async def hub_list(
    request: Request,
    _principal: HubsRead,
    _wait: AfterEvent,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> JSONResponse:
    every = [{"hub": h.code, "name": h.name, "country": h.country} for h in hubs().values()]
    items = every[offset : offset + limit]
    return paged(request, items, total=len(every), limit=limit, offset=offset)


@router.get(
    "/hubs/{hub}",
    summary="A hub's board: inbound, on hand, held, dwell time",
    response_model=schemas.HubBoard,
)
async def hub_board(hub: str, principal: HubsRead, conn: Active) -> JSONResponse:
    if hub not in hubs():
        raise Problem(404, "Not found", f"No hub {hub}; known hubs: {', '.join(sorted(hubs()))}.")
    answer = await queries.hub_board(conn, hub, datetime.now(UTC))
    answer["name"] = hubs()[hub].name
    for key in ("inbound_shipments", "on_hand_shipments", "held_shipments"):
        answer[key] = shown_all(principal, Resource.SHIPMENT, answer[key])
    return json_response(require_shown(principal, Resource.AGGREGATE, answer, what="It"))


@router.get(
    "/shipments/{shipment_id}/timeline",
    summary="A shipment's milestones",
    response_model=schemas.Timeline,
)
async def shipment_timeline(
    shipment_id: str, principal: ShipmentsTimeline, conn: Active
) -> JSONResponse:
    found, events = await queries.shipment_timeline(conn, shipment_id)
    if found is None:
        raise Problem(404, "Not found", "No such shipment.")
    scope = {"hub": found["hub"] or None, "donor": found["donor"] or None}
    shipment = require_shown(principal, Resource.SHIPMENT, found, what="This shipment", **scope)
    milestones = [
        shown_event(
            principal,
            e["event_type"],
            {
                "type": e["event_type"],
                "time": e["time"],
                "actor": e["actor"],
                "event_id": e["event_id"],
                "data": e["data"],
            },
            **scope,
        )
        for e in events
    ]
    return json_response({"shipment": shipment, "milestones": [m for m in milestones if m]})


@router.get(
    "/audit/{stream_id}",
    summary="Every event of a stream: actor, time, causation",
    response_model=schemas.AuditTrail,
)
async def audit(stream_id: str, principal: AuditRead, conn: Active) -> JSONResponse:
    events = await queries.audit_trail(conn, stream_id)
    if not events:
        raise Problem(404, "Not found", "No events for this stream.")
    # The stream is whose its latest event says (a shipment's hub and donor).
    last = events[-1]
    require_shown(
        principal,
        event_resource(last["event_type"]),
        last,
        what="This stream",
        hub=last["scope_hub"],
        donor=last["scope_donor"],
    )
    seen = [
        shown_event(principal, e["event_type"], e, hub=e["scope_hub"], donor=e["scope_donor"])
        for e in events
    ]
    return json_response({"stream_id": stream_id, "events": [e for e in seen if e]})


# -- the live stream -------------------------------------------------------------------------

stream_router = APIRouter(tags=["live stream"])


@stream_router.get(
    "/events/stream",
    summary="Server-Sent Events of every event (filters; resumable with Last-Event-ID)",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id` (the event id, for Last-Event-ID), `event` "
            "(its type; `expired` when the token runs out), `data` (the event as JSON)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def event_stream(
    runtime: RuntimeDep,
    principal: EventsStream,
    _wait: AfterEvent,
    types: Annotated[str | None, Query(description="Comma-separated event types")] = None,
    subject: Annotated[str | None, Query(description="Only this stream id")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    since: Annotated[
        str | None, Query(description="Last-Event-ID, for clients without headers")
    ] = None,
    ticket: Annotated[
        str | None,
        Query(description="A stream ticket (POST /events/stream/tickets), instead of a header"),
    ] = None,
) -> EventSourceResponse:
    stream: EventStream = runtime.stream  # type: ignore[attr-defined]
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None
    session = await stream.open(principal, last_event_id or since)
    events = stream.sse(session, types=wanted, subject=subject)
    return ClosingEventSourceResponse(session, events, ping=15, send_timeout=30)


@stream_router.post(
    "/events/stream/tickets",
    status_code=201,
    summary="A single-use ticket to open one live stream (for EventSource, which sends no headers)",
    dependencies=[Depends(RateLimit(per_minute=60, burst=20))],
)
async def stream_ticket(runtime: RuntimeDep, principal: EventsStreamTicket) -> schemas.StreamTicket:
    # Not a command (nothing is stored), so not through handle_command.
    stream: EventStream = runtime.stream  # type: ignore[attr-defined]
    ticket, seconds = stream.tickets.issue(principal)
    return schemas.StreamTicket(ticket=ticket, expires_in=round(seconds, 1))


# -- operations ------------------------------------------------------------------------------

admin_router = APIRouter(tags=["operations"])
# The dead letters of the service's consumers (`aidline dlq`).
dead_letter_routes = dead_letter_router(POLICY)


@admin_router.get(
    "/admin/status",
    summary="Lag per partition, events applied, rebuild progress",
    response_model=schemas.AdminStatus,
)
async def admin_status(
    runtime: RuntimeDep, models: Models, principal: AdminStatus, _wait: AfterEvent
) -> JSONResponse:
    rebuilder: Rebuilder = runtime.rebuilder  # type: ignore[attr-defined]
    status = await queries.status(models.current, rebuilder.progress)
    # Exception text (a failed rebuild's error) is for admins only.
    return json_response(require_shown(principal, Resource.STATUS, status, what="It"))


@admin_router.post(
    "/admin/rebuild",
    status_code=202,
    summary="Replay every topic into a new generation; swap it in when caught up",
)
async def admin_rebuild(request: Request, _principal: AdminRebuild) -> JSONResponse:
    return await handle_command(request, handlers.rebuild, Rebuild())


# -- the dashboard ---------------------------------------------------------------------------

page_router = APIRouter(tags=["dashboard"])


@page_router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@page_router.get(
    "/dev/token",
    summary="Development only, from this machine only: an observer token for the dashboard",
    responses={404: {"description": "Not handed out here (not development, or not loopback)"}},
    response_model=schemas.DevToken,
)
async def dev_token(request: Request, runtime: RuntimeDep) -> JSONResponse:
    settings: ProjectionSettings = runtime.settings  # type: ignore[assignment]
    if not (settings.dev_tokens_handed_out and from_loopback(request)):
        raise Problem(404, "Not found", "Development tokens are not handed out here.")
    token = mint_token(settings.jwt_secret, "dashboard", [Role.OBSERVER], ttl_seconds=8 * 3600)
    return JSONResponse({"token": token, "roles": [Role.OBSERVER.value]})
