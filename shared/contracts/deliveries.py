"""`aidline.deliveries` — produced by the delivery service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from shared.contracts.topics import DELIVERIES
from shared.domain import DomainEvent, EventRegistry

registry = EventRegistry(source="/aidline/delivery", topic=DELIVERIES)

TransportMode = Literal["road", "rail", "air", "sea"]
InspectionResult = Literal["passed", "held"]
EumClass = Literal["none", "routine", "enhanced"]  # as in shared.catalogue.Item.eum_class


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentPlanned(DomainEvent):
    """An approved allocation's shipment. It carries the allocation's lineage (v2):
    `endorsed_by_decision` and `confirmed_by_decision` as in `allocation.proposed`; null when
    not known (a v1 event, or an allocation proposed before its lineage was kept)."""

    TYPE = "shipment.planned"
    VERSION = 2
    shipment_id: str
    allocation_id: str
    requirement_id: str
    pledge_id: str
    donor: str
    item_code: str
    quantity: int
    hub: str
    handover_point: str
    # The item's end-use-monitoring class when the shipment was planned: "enhanced" items need
    # serials at dispatch and handover. Defaults to "none" for producers that do not know it.
    eum_class: EumClass = "none"
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None


@registry.upcaster(ShipmentPlanned.TYPE, 1)
def _planned_v1(data: dict[str, Any]) -> dict[str, Any]:
    # A v1 event names no decisions; its allocation's proposal is on another topic.
    return {**data, "endorsed_by_decision": None, "confirmed_by_decision": None}


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDispatched(DomainEvent):
    TYPE = "shipment.dispatched"
    mode: TransportMode
    carrier_ref: str
    serials: list[str] = field(default_factory=list)  # enhanced end-use monitoring items


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentArrivedAtHub(DomainEvent):
    TYPE = "shipment.arrived_at_hub"
    hub: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentInspected(DomainEvent):
    TYPE = "shipment.inspected"
    result: InspectionResult
    notes: str = ""


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDepartedHub(DomainEvent):
    TYPE = "shipment.departed_hub"


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentHandedOver(DomainEvent):
    TYPE = "shipment.handed_over"
    received_good: int
    damaged: int
    short: int
    serials: list[str] = field(default_factory=list)


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentReceived(DomainEvent):
    TYPE = "shipment.received"


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDelayed(DomainEvent):
    TYPE = "shipment.delayed"
    reason: str
    new_eta: date


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentLost(DomainEvent):
    TYPE = "shipment.lost"
    quantity: int
    reason: str
    serials: list[str] = field(default_factory=list)  # which enhanced-EUM items, when known


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentCancelled(DomainEvent):
    """The allocation was cancelled before the shipment left the donor."""

    TYPE = "shipment.cancelled"
    reason: str  # the allocation's cancellation reason


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentCancellationRefused(DomainEvent):
    """The allocation was cancelled, but the shipment had already left: it goes on."""

    TYPE = "shipment.cancellation_refused"
    reason: str  # the allocation's cancellation reason
    status: str  # where the shipment was when the cancellation arrived
    refusal: str  # why it was refused, for people


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShipmentEumDiscrepancy(DomainEvent):
    """End-use monitoring: the serials handed over differ from those dispatched (minus lost)."""

    TYPE = "shipment.eum_discrepancy"
    missing: list[str]  # dispatched, not reported lost, and not handed over
    unexpected: list[str]  # handed over but never dispatched on this shipment
