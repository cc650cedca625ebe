"""Rows of the read models (one per requirement, pledge, allocation, shipment, item) and the
requirement status of DESIGN.md §5. Pure: no I/O."""

from __future__ import annotations

from dataclasses import Field, dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, Literal, get_args

Status = Literal[
    "submitted",
    "endorsed",
    "partially_covered",
    "covered",
    "in_transit",
    "partially_delivered",
    "delivered",
    "fulfilled",
    "cancelled",
]
STATUSES: tuple[str, ...] = get_args(Status)


class Row:
    """A read-model row: a dataclass whose fields are the table's columns."""

    KEY: ClassVar[str]
    # Declared for the type checker: every subclass is a dataclass (so `fields` takes a row).
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    # Changed by events of more than one topic (so, in a replay shared between processes, by
    # more than one writer at once).
    SHARED: ClassVar[bool] = False

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def key(self) -> str:
        return str(getattr(self, self.KEY))


def requirement_status(
    *,
    requested: int,
    allocated: int,
    in_transit: int,
    delivered: int,
    endorsed: bool,
    cancelled: bool,
    fulfilled: bool,
) -> str:
    """The furthest step a requirement has reached: submitted → endorsed → partially_covered |
    covered → in_transit → partially_delivered | delivered → fulfilled, or cancelled."""
    if cancelled:
        return "cancelled"
    if fulfilled:
        return "fulfilled"
    if delivered > 0:
        return "delivered" if requested and delivered >= requested else "partially_delivered"
    if in_transit > 0:
        return "in_transit"
    if allocated > 0:
        return "covered" if requested and allocated >= requested else "partially_covered"
    return "endorsed" if endorsed else "submitted"


@dataclass
class Requirement(Row):
    KEY = "requirement_id"
    SHARED = True  # requests, allocations and deliveries all change its quantities
    requirement_id: str
    item_code: str = ""
    unit: str = ""
    priority: int = 4
    needed_by: date | None = None
    destination: str = ""
    requested: int = 0
    pledged: int = 0  # matched to it by allocations proposed or approved
    allocated: int = 0  # approved allocations
    in_transit: int = 0  # dispatched, not yet handed over
    delivered_shipments: int = 0  # handed over in good order (delivery service)
    delivered_recorded: int = 0  # recorded against it by the request service
    open_shortfall: int | None = None
    endorsed: bool = False
    cancelled: bool = False
    fulfilled: bool = False
    status: str = "submitted"
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    decision_id: str | None = None  # the forum decision that endorsed it (at most one)
    shortfall_reason: str | None = None  # why `open_shortfall` is open (the planner's words)

    @property
    def delivered(self) -> int:
        # The handover and the request service's record are one fact seen twice: show whichever
        # arrived, never their sum.
        return max(self.delivered_shipments, self.delivered_recorded)

    def refresh(self, at: datetime) -> None:
        self.status = requirement_status(
            requested=self.requested,
            allocated=self.allocated,
            in_transit=self.in_transit,
            delivered=self.delivered,
            endorsed=self.endorsed,
            cancelled=self.cancelled,
            fulfilled=self.fulfilled,
        )
        self.updated_at = at


@dataclass
class Pledge(Row):
    KEY = "pledge_id"
    pledge_id: str
    donor: str = ""
    item_code: str = ""
    unit: str = ""
    source: str = ""
    available_from: date | None = None
    announced_quantity: int = 0
    quantity: int = 0  # current total (after reductions)
    value_eur: float | None = None  # of the announced quantity
    status: str = "announced"  # announced | confirmed | withdrawn
    announced_at: datetime | None = None
    confirmed_at: datetime | None = None
    updated_at: datetime | None = None
    decision_id: str | None = None  # the forum decision that confirmed it (at most one)


ALLOCATION_LIVE = frozenset({"proposed", "approved"})


@dataclass
class Allocation(Row):
    KEY = "allocation_id"
    allocation_id: str
    requirement_id: str = ""
    pledge_id: str = ""
    item_code: str = ""
    quantity: int = 0
    hub: str = ""
    handover_by: date | None = None
    status: str = "proposed"  # proposed | approved | rejected | cancelled
    proposed_at: datetime | None = None
    updated_at: datetime | None = None
    # Lineage (allocation.proposed v2): the decisions that endorsed its requirement and
    # confirmed its pledge; None when not known.
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None

    def contribution(self) -> tuple[int, int]:
        """(pledged, allocated) it adds to its requirement."""
        pledged = self.quantity if self.status in ALLOCATION_LIVE else 0
        return pledged, self.quantity if self.status == "approved" else 0


MOVING = frozenset({"dispatched", "at_hub", "held", "cleared", "departed"})
HANDED_OVER = frozenset({"handed_over", "received"})


@dataclass
class Shipment(Row):
    KEY = "shipment_id"
    shipment_id: str
    allocation_id: str = ""
    requirement_id: str = ""
    pledge_id: str = ""
    donor: str = ""
    item_code: str = ""
    quantity: int = 0
    hub: str = ""
    handover_point: str = ""
    # planned | dispatched | at_hub | held | cleared | departed | handed_over | received | lost
    # | cancelled
    status: str = "planned"
    mode: str | None = None
    carrier_ref: str | None = None
    eta: date | None = None
    delayed: bool = False
    planned_at: datetime | None = None
    dispatched_at: datetime | None = None
    arrived_at: datetime | None = None
    inspected_at: datetime | None = None
    departed_at: datetime | None = None
    handed_over_at: datetime | None = None
    received_at: datetime | None = None
    lost_at: datetime | None = None
    received_good: int = 0
    damaged: int = 0
    short: int = 0
    lost_quantity: int = 0
    updated_at: datetime | None = None
    # Lineage (shipment.planned v2): its allocation's decisions; None when not known.
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None

    def contribution(self) -> tuple[int, int]:
        """(in transit, delivered) it adds to its requirement."""
        in_transit = self.quantity - self.lost_quantity if self.status in MOVING else 0
        return in_transit, self.received_good if self.status in HANDED_OVER else 0


@dataclass
class Decision(Row):
    """A forum decision (`decision.recorded`): its meeting and how much it decided."""

    KEY = "decision_id"
    decision_id: str
    meeting_date: date | None = None
    reference: str = ""
    endorsed: int = 0  # requirements it endorsed
    confirmed: int = 0  # pledges it confirmed
    recorded_at: datetime | None = None


@dataclass
class ItemRow(Row):
    KEY = "item_code"
    item_code: str
    name: str
    capability: str
    unit: str
