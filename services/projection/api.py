"""Thin routes of the projection service: parse, authorize, ask `queries`, shape the answer."""

from __future__ import annotations

import csv
import io
import json
import pathlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.projection import queries
from services.projection.access import POLICY
from services.projection.domain.model import Status
from services.projection.generations import Projector
from services.projection.settings import ProjectionSettings
from services.projection.stream import EventStream, StreamEvent
from services.projection.visibility import aggregates_only, shown
from shared.auth import Principal, Role, TokenError, mint_token
from shared.catalogue import hubs
from shared.commands import CommandResult
from shared.web.commands import run_command
from shared.web.deps import BEARER_CHALLENGE, Authorize, RuntimeDep, authenticate
from shared.web.problems import Problem

STATIC = pathlib.Path(__file__).parent / "static"


def _projector(runtime: Any) -> Projector:
    projector: Projector = runtime.projector
    return projector


async def read_your_writes(
    request: Request,
    runtime: RuntimeDep,
    after_event: Annotated[
        uuid.UUID | None,
        Query(description="Answer only once this event is applied (waits up to 5 s, else 504)"),
    ] = None,
) -> None:
    """`?after_event=<event id>` on any GET: wait until the projection has applied it."""
    if after_event is None:
        return
    authenticate(request)  # never make an unauthenticated caller wait
    settings: ProjectionSettings = runtime.settings  # type: ignore[assignment]
    if not await _projector(runtime).wait_applied(after_event, settings.read_your_writes_timeout):
        raise Problem(
            504,
            "Not yet applied",
            f"Event {after_event} was not applied within {settings.read_your_writes_timeout:g} s;"
            " retry, or check GET /admin/status for lag.",
            kind="event-not-applied",
        )


AfterEvent = Annotated[None, Depends(read_your_writes)]


# One alias per access rule, so each route names its rule in its signature.
AdminStatus = Annotated[Principal, Depends(Authorize(POLICY, "admin.status"))]
AuditRead = Annotated[Principal, Depends(Authorize(POLICY, "audit.read"))]
BoardRead = Annotated[Principal, Depends(Authorize(POLICY, "board.read"))]
CapabilitiesGaps = Annotated[Principal, Depends(Authorize(POLICY, "capabilities.gaps"))]
DonorsLedger = Annotated[Principal, Depends(Authorize(POLICY, "donors.ledger"))]
HubsRead = Annotated[Principal, Depends(Authorize(POLICY, "hubs.read"))]
ShipmentsTimeline = Annotated[Principal, Depends(Authorize(POLICY, "shipments.timeline"))]


router = APIRouter(tags=["read models"])


@router.get("/board/requirements", summary="The requirement board (filters; ?format=csv)")
async def board(
    runtime: RuntimeDep,
    _principal: BoardRead,
    _wait: AfterEvent,
    capability: str | None = None,
    status: Status | None = None,
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    format: Literal["json", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    async with _projector(runtime).current.db.engine.connect() as conn:
        rows = await queries.board(
            conn, capability=capability, status=status, priority=priority, limit=limit,
            offset=offset,
        )  # fmt: skip
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=queries.CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="requirements.csv"'},
        )
    return JSONResponse(_json({"requirements": rows, "count": len(rows)}))


@router.get("/board/requirements/{requirement_id}", summary="One requirement on the board")
async def requirement(
    requirement_id: str,
    runtime: RuntimeDep,
    principal: BoardRead,
    _wait: AfterEvent,
) -> JSONResponse:
    async with _projector(runtime).current.db.engine.connect() as conn:
        found = await queries.requirement(conn, requirement_id)
    if found is None:
        raise Problem(404, "Not found", f"No requirement {requirement_id} on the board.")
    found["shipments"] = _shipments_for(principal, found["shipments"])
    return JSONResponse(_json(found))


@router.get("/donors/{nation}/ledger", summary="A donor nation's ledger")
async def donor_ledger(
    nation: Annotated[str, Path(pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2")],
    runtime: RuntimeDep,
    _principal: DonorsLedger,
    _wait: AfterEvent,
) -> JSONResponse:
    async with _projector(runtime).current.db.engine.connect() as conn:
        ledger = await queries.donor_ledger(conn, nation.upper())
    return JSONResponse(_json(ledger))


@router.get("/capabilities/gaps", summary="Need vs pledged vs allocated vs delivered")
async def capability_gaps(
    runtime: RuntimeDep,
    _principal: CapabilitiesGaps,
    _wait: AfterEvent,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONResponse:
    async with _projector(runtime).current.db.engine.connect() as conn:
        gaps = await queries.capability_gaps(conn, top)
    return JSONResponse(_json(gaps))


@router.get("/hubs", summary="The logistics hubs")
async def hub_list(_principal: HubsRead, _wait: AfterEvent) -> JSONResponse:
    return JSONResponse(
        [{"code": h.code, "name": h.name, "country": h.country} for h in hubs().values()]
    )


@router.get("/hubs/{hub}", summary="A hub's board: inbound, on hand, held, dwell time")
async def hub_board(
    hub: str,
    runtime: RuntimeDep,
    principal: HubsRead,
    _wait: AfterEvent,
) -> JSONResponse:
    if hub not in hubs():
        raise Problem(404, "Not found", f"No hub {hub}; known hubs: {', '.join(sorted(hubs()))}.")
    async with _projector(runtime).current.db.engine.connect() as conn:
        answer = await queries.hub_board(conn, hub, datetime.now(UTC))
    answer["name"] = hubs()[hub].name
    for key in ("inbound_shipments", "on_hand_shipments", "held_shipments"):
        if aggregates_only(principal):
            answer.pop(key)
        else:
            answer[key] = _shipments_for(principal, answer[key])
    return JSONResponse(_json(answer))


@router.get("/shipments/{shipment_id}/timeline", summary="A shipment's milestones")
async def shipment_timeline(
    shipment_id: str,
    runtime: RuntimeDep,
    principal: ShipmentsTimeline,
    _wait: AfterEvent,
) -> JSONResponse:
    if aggregates_only(principal):
        raise Problem(
            403, "Forbidden", "Observers see aggregates, not single shipments.",
            kind="aggregates-only",
        )  # fmt: skip
    async with _projector(runtime).current.db.engine.connect() as conn:
        found = await queries.shipment(conn, shipment_id)
        events = await queries.audit_trail(conn, shipment_id)
    if found is None:
        raise Problem(404, "Not found", f"No shipment {shipment_id}.")
    scope = {"hub": found["hub"] or None, "donor": found["donor"] or None}
    milestones = [
        {
            "type": e["event_type"],
            "time": e["time"],
            "actor": e["actor"],
            "event_id": e["event_id"],
            "data": shown(principal, e["data"], **scope),
        }
        for e in events
    ]
    return JSONResponse(
        _json({"shipment": shown(principal, found, **scope), "milestones": milestones})
    )


@router.get("/audit/{stream_id}", summary="Every event of a stream: actor, time, causation")
async def audit(
    stream_id: str,
    runtime: RuntimeDep,
    principal: AuditRead,
    _wait: AfterEvent,
) -> JSONResponse:
    async with _projector(runtime).current.db.engine.connect() as conn:
        events = await queries.audit_trail(conn, stream_id)
    if not events:
        raise Problem(404, "Not found", f"No events for stream {stream_id}.")
    for e in events:
        e["data"] = shown(principal, e["data"], hub=e["scope_hub"], donor=e["scope_donor"])
    return JSONResponse(_json({"stream_id": stream_id, "events": events}))


def _shipments_for(principal: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [shown(principal, r, hub=r["hub"] or None, donor=r["donor"] or None) for r in rows]


def _json(value: Any) -> Any:
    """Dates and times as ISO 8601, UUIDs as strings."""
    return json.loads(json.dumps(value, default=_plain))


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


# -- the live stream -------------------------------------------------------------------------

stream_router = APIRouter(tags=["live stream"])


class StreamAuthorize(Authorize):
    """As `Authorize`, and also accepts `?access_token=`: a browser's EventSource cannot send
    an Authorization header. (Only this route takes a token in the URL.)"""

    async def __call__(self, request: Request) -> Principal:
        token = request.query_params.get("access_token")
        if token and "authorization" not in request.headers:
            try:
                principal: Principal = request.app.state.verifier.verify(token)
            except TokenError as exc:
                raise Problem(
                    401, "Unauthorized", f"The access token is not valid: {exc}.",
                    headers=BEARER_CHALLENGE,
                ) from exc  # fmt: skip
            if not self.rule.allows(principal.roles):
                raise Problem(403, "Forbidden", "This needs a reader role.", kind="forbidden-role")
            request.state.principal = principal
            return principal
        return await super().__call__(request)


@stream_router.get(
    "/events/stream",
    summary="Server-Sent Events of every event (filters; resumable with Last-Event-ID)",
    response_class=EventSourceResponse,
)
async def event_stream(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(StreamAuthorize(POLICY, "events.stream"))],
    _wait: AfterEvent,
    types: Annotated[str | None, Query(description="Comma-separated event types")] = None,
    subject: Annotated[str | None, Query(description="Only this stream id")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    since: Annotated[
        str | None, Query(description="Last-Event-ID, for clients without headers")
    ] = None,
) -> EventSourceResponse:
    stream: EventStream = runtime.stream  # type: ignore[attr-defined]
    wanted = {t.strip() for t in types.split(",") if t.strip()} if types else None

    def visible(event: StreamEvent) -> bool:
        return (wanted is None or event.event_type in wanted) and (
            subject is None or event.subject == subject
        )

    def sse(event: StreamEvent) -> ServerSentEvent:
        record = dict(event.record)
        record["data"] = shown(
            principal, record["data"], hub=event.scope_hub, donor=event.scope_donor
        )
        return ServerSentEvent(data=json.dumps(record, default=str), id=event.event_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        with stream.subscribe() as subscription:
            resume = last_event_id or since
            upto = 0
            if resume:
                missed, upto = await stream.missed(resume)
                for event in missed:
                    if visible(event):
                        yield sse(event)
            yield ServerSentEvent(comment="live")
            while not subscription.overflowed:
                event = await subscription.queue.get()
                if event.seq > upto and visible(event):
                    yield sse(event)

    return EventSourceResponse(events(), ping=15, send_timeout=30)


# -- operations ------------------------------------------------------------------------------

admin_router = APIRouter(tags=["operations"])


@admin_router.get("/admin/status", summary="Lag per partition, events applied, rebuild progress")
async def admin_status(
    runtime: RuntimeDep, _principal: AdminStatus, _wait: AfterEvent
) -> JSONResponse:
    return JSONResponse(_json(await _projector(runtime).status()))


@admin_router.post(
    "/admin/rebuild",
    status_code=202,
    summary="Replay every topic into a new generation; swap it in when caught up",
)
async def admin_rebuild(
    request: Request,
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(Authorize(POLICY, "admin.rebuild"))],
) -> JSONResponse:
    projector = _projector(runtime)
    reserved: list[int] = []

    async def handler(tx: Any) -> CommandResult:
        number = await projector.reserve_rebuild(tx.conn)
        reserved.append(number)
        key = f"generation-{number}"
        body = {"id": key, "version": number, "event_id": None,
                "generation": number, "status": "/admin/status"}  # fmt: skip
        return CommandResult(id=key, version=number, status_code=202, body=body)

    response = await run_command(request, runtime.store, handler)
    if reserved:  # not on an idempotent replay
        projector.launch_rebuild(reserved[0])
    return response


# -- the dashboard ---------------------------------------------------------------------------

page_router = APIRouter(tags=["dashboard"])


@page_router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@page_router.get("/dev/token", summary="Development only: an observer token for the dashboard")
async def dev_token(runtime: RuntimeDep) -> JSONResponse:
    settings: ProjectionSettings = runtime.settings  # type: ignore[assignment]
    if not (settings.development and settings.dev_token_enabled) or settings.jwt_public_key_file:
        raise Problem(404, "Not found", "Development tokens are not handed out here.")
    token = mint_token(settings.jwt_secret, "dashboard", [Role.OBSERVER], ttl_seconds=8 * 3600)
    return JSONResponse({"token": token, "roles": [Role.OBSERVER.value]})
