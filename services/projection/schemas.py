"""The projection's HTTP contract: the answers of its routes, for the OpenAPI document.

The routes answer the rows `queries` shapes as they are (through `JSONResponse`), never
re-validated through these models: a field the visibility table holds back from the caller's
role is left out, and a model would put it back as null. So every field the table can hold
back (`shared.auth.visibility.FIELD_GROUPS`) is optional and nullable here, and the rows of the
read models allow members beyond those named (a read model may grow a column without breaking
a client generated from this document).
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.web.paging import ListPage

_HELD = "left out when the visibility table holds it back from the caller's role"


class _Row(BaseModel):
    """A row of a read model: the members named below, and perhaps more."""

    model_config = ConfigDict(extra="allow")


# -- the board -------------------------------------------------------------------------------


class BoardRow(_Row):
    requirement_id: str
    item_code: str
    item_name: str | None
    capability: str
    unit: str
    priority: int = Field(ge=1, le=4)
    needed_by: date | None
    destination: str
    status: str
    requested: int
    pledged: int
    allocated: int
    in_transit: int
    delivered: int
    open_shortfall: int | None
    submitted_at: datetime | None
    updated_at: datetime | None


class BoardPage(ListPage[BoardRow]):
    """The requirement board, a page at a time (the list envelope)."""


class BoardAllocation(_Row):
    """An allocation of the requirement, as planning records are shown."""

    allocation_id: str
    pledge_id: str
    quantity: int
    status: str
    hub: str | None = None
    approved_by: str | None = Field(None, description=_HELD)
    reason: str | None = Field(None, description=_HELD)
    rationale: str | None = Field(None, description=_HELD)


class ShipmentRow(_Row):
    """A shipment as the projection holds it; left out entirely where the caller may not see
    it, and without route, timing, people, reasons and serials where the table says so."""

    shipment_id: str
    allocation_id: str | None = None
    requirement_id: str | None = None
    pledge_id: str | None = None
    donor: str | None = None
    item_code: str | None = None
    quantity: int | None = None
    hub: str | None = None
    status: str
    handover_point: str | None = Field(None, description=_HELD)
    mode: str | None = Field(None, description=_HELD)
    carrier_ref: str | None = Field(None, description=_HELD)
    eta: date | None = Field(None, description=_HELD)
    delayed: bool | None = Field(None, description=_HELD)
    dwell_hours: float | None = Field(None, description="On a hub's board: hours at the hub")


class RequirementDetail(BoardRow):
    """One requirement on the board, with its allocations and the shipments the caller may see."""

    allocations: list[BoardAllocation]
    shipments: list[ShipmentRow]
    redacted: bool | None = None


# -- ledgers and gaps ------------------------------------------------------------------------


class LedgerFigures(BaseModel):
    pledged_quantity: int
    pledged_eur: float
    confirmed_quantity: int
    confirmed_eur: float
    allocated_quantity: int
    allocated_eur: float
    shipped_quantity: int
    shipped_eur: float
    handed_over_quantity: int
    handed_over_eur: float
    backlog_quantity: int
    backlog_eur: float


class DonorLedger(BaseModel):
    nation: str
    pledges: int
    totals: LedgerFigures
    items: dict[str, LedgerFigures] = Field(description="Per item code")
    handed_over_shipments: int
    on_time_rate: float | None = Field(description="Handed over by the date planned; null: none")


class GapItem(BaseModel):
    item_code: str
    name: str
    need: int
    pledged: int
    allocated: int
    delivered: int
    unpledged: int
    unmet: int


class CapabilityGap(BaseModel):
    capability: str
    need: int
    pledged: int
    allocated: int
    delivered: int
    unpledged: int
    unmet: int
    items: list[GapItem]


class GapPoint(BaseModel):
    day: str = Field(description="YYYY-MM-DD")
    pledged: int = Field(description="Cumulative")
    delivered: int = Field(description="Cumulative")


class UncoveredRequirement(BoardRow):
    uncovered: int


class CapabilityGaps(BaseModel):
    capabilities: list[CapabilityGap]
    top_unmet_critical: list[UncoveredRequirement]
    over_time: dict[str, list[GapPoint]] = Field(description="Per capability, by day")


# -- decisions -------------------------------------------------------------------------------


class DecisionRow(BaseModel):
    decision_id: str
    meeting_date: date | None
    reference: str
    recorded_at: datetime | None
    requirements_endorsed: int
    pledges_confirmed: int
    endorsed_quantity: int
    allocated_quantity: int
    in_transit_quantity: int
    handed_over_quantity: int
    share_handed_over: float | None
    shortfalls: int
    confirmed_quantity: int


class DecisionPage(ListPage[DecisionRow]):
    """The forum's decisions, latest meeting first (the list envelope)."""


class _Figures(BaseModel):
    confirmed: int
    proposed: int
    allocated: int
    dispatched: int
    at_hub: int
    handed_over: int
    received: int
    lost: int
    days_to_allocated: int | None
    days_to_dispatched: int | None
    days_to_at_hub: int | None
    days_to_handed_over: int | None
    days_to_received: int | None
    open_shortfall: int


class ExecutionTotals(_Figures):
    share_handed_over: float | None


class ExecutionLine(_Figures):
    """A requirement the decision endorsed or a pledge it confirmed, followed to the border."""

    kind: Literal["requirement", "pledge"]
    subject: str = Field(description="The requirement's or the pledge's id (as `kind` says)")
    item_code: str
    unit: str
    status: str
    priority: int | None = None
    needed_by: date | None = None
    donor: str | None = None
    held_shipments: int
    delayed_shipments: int
    lost_shipments: int
    stuck: list[Literal["no_allocation", "shortfall", "held", "delayed", "lost"]]
    shortfall_reason: str | None = Field(None, description=_HELD)


class StuckLines(BaseModel):
    requirements: int
    pledges: int
    quantity: int


class StuckShortfall(BaseModel):
    requirements: int
    quantity: int


class StuckShipments(BaseModel):
    shipments: int
    quantity: int


class StuckSummary(BaseModel):
    no_allocation: StuckLines
    shortfall: StuckShortfall
    held: StuckShipments
    delayed: StuckShipments
    lost: StuckShipments


class ExecutingShipment(BaseModel):
    shipment_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    donor: str
    hub: str
    status: str
    quantity: int
    received_good: int
    lost_quantity: int
    held: bool
    inspection_notes: str | None = Field(None, description=_HELD)
    delayed: bool | None = Field(None, description=_HELD)
    new_eta: date | None = Field(None, description=_HELD)
    delay_reason: str | None = Field(None, description=_HELD)
    loss_reason: str | None = Field(None, description=_HELD)
    redacted: bool | None = None


class DecisionExecution(BaseModel):
    decision_id: str
    meeting_date: date | None
    reference: str
    recorded_at: datetime | None
    requirements_endorsed: int
    pledges_confirmed: int
    requirements: ExecutionTotals
    pledges: ExecutionTotals
    stuck: StuckSummary
    lines: list[ExecutionLine]
    shipments: list[ExecutingShipment] = Field(description="Those the caller may see")


# -- what changed ----------------------------------------------------------------------------


class ChangeLine(BaseModel):
    kind: str = Field(description="need, endorsement, pledge, decision, handover, slip, …")
    date: dt.date | None
    at: datetime | None
    subject: str | None = None
    summary: str
    requirement_id: str | None = None
    pledge_id: str | None = None
    decision_id: str | None = None
    nation: str | None = None
    item_code: str | None = None
    quantity: int | None = None
    unit: str | None = None
    shipment_id: str | None = Field(None, description=_HELD)
    hub: str | None = None
    new_eta: dt.date | None = Field(None, description=_HELD)
    shortfall_reason: str | None = Field(None, description=_HELD)
    note: str | None = None
    redacted: bool | None = None


class ChangesPage(ListPage[ChangeLine]):
    """The list envelope, and the two days asked for."""

    from_: dt.date = Field(alias="from")
    to: dt.date


# -- hubs, shipments, streams ----------------------------------------------------------------


class HubRow(BaseModel):
    hub: str = Field(description="The hub's code, as shipments name it")
    name: str
    country: str


class HubPage(ListPage[HubRow]):
    """The logistics hubs (the list envelope)."""


class HubFigure(BaseModel):
    shipments: int
    quantity: int


class Dwell(BaseModel):
    on_hand_average: float | None
    departed_average: float | None
    departed_sample: int


class HubBoard(BaseModel):
    hub: str
    name: str
    inbound: HubFigure
    on_hand: HubFigure
    held_at_inspection: HubFigure
    dwell_hours: Dwell
    inbound_shipments: list[ShipmentRow]
    on_hand_shipments: list[ShipmentRow]
    held_shipments: list[ShipmentRow]


class Milestone(BaseModel):
    type: str
    time: datetime
    actor: str | None = Field(None, description=_HELD)
    event_id: str
    data: dict[str, Any] = Field(description="The event's data, as the caller may see it")
    redacted: bool | None = None


class Timeline(BaseModel):
    shipment: ShipmentRow
    milestones: list[Milestone]


class AuditEvent(_Row):
    event_id: str
    stream_id: str
    event_type: str
    time: datetime
    actor: str | None = Field(None, description=_HELD)
    data: dict[str, Any]
    redacted: bool | None = None


class AuditTrail(BaseModel):
    stream_id: str
    events: list[AuditEvent]


class StreamTicket(BaseModel):
    ticket: str = Field(description="Pass as `GET /events/stream?ticket=…`; opens one stream")
    expires_in: float = Field(description="Seconds the ticket is good for")


# -- operations ------------------------------------------------------------------------------


class PartitionLag(BaseModel):
    topic: str
    partition: int
    next_offset: int
    lag: int


class RebuildState(BaseModel):
    state: Literal["idle", "building", "swapped", "failed"]
    generation: int | None
    applied: int
    total: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(None, description="Why it failed; admins only")
    progress: float


class AdminStatus(BaseModel):
    generation: int
    schema_: str = Field(alias="schema")
    consumer: str
    running: bool
    events_applied: int
    dead_lettered: int
    last_event_time: datetime | None
    lag: int
    partitions: list[PartitionLag]
    rebuild: RebuildState
    redacted: bool | None = None


class DevToken(BaseModel):
    token: str
    roles: list[str]
