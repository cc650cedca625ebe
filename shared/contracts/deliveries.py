"""`aidline.deliveries` — produced by the delivery service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from shared.contracts.topics import DELIVERIES
from shared.domain import DomainEvent, EventCatalogue

catalogue = EventCatalogue(source="/aidline/delivery", topic=DELIVERIES)

TransportMode = Literal["road", "rail", "air", "sea"]
InspectionResult = Literal["passed", "held"]


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentPlanned(DomainEvent):
    TYPE = "shipment.planned"
    shipment_id: str
    allocation_id: str
    requirement_id: str
    pledge_id: str
    donor: str
    item_code: str
    quantity: int
    hub: str
    handover_point: str


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDispatched(DomainEvent):
    TYPE = "shipment.dispatched"
    mode: TransportMode
    carrier_ref: str
    serials: list[str] = field(default_factory=list)  # enhanced end-use monitoring items


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentArrivedAtHub(DomainEvent):
    TYPE = "shipment.arrived_at_hub"
    hub: str


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentInspected(DomainEvent):
    TYPE = "shipment.inspected"
    result: InspectionResult
    notes: str = ""


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDepartedHub(DomainEvent):
    TYPE = "shipment.departed_hub"


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentHandedOver(DomainEvent):
    TYPE = "shipment.handed_over"
    received_good: int
    damaged: int
    short: int
    serials: list[str] = field(default_factory=list)


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentReceived(DomainEvent):
    TYPE = "shipment.received"


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentDelayed(DomainEvent):
    TYPE = "shipment.delayed"
    reason: str
    new_eta: date


@catalogue.register
@dataclass(frozen=True, kw_only=True)
class ShipmentLost(DomainEvent):
    TYPE = "shipment.lost"
    quantity: int
    reason: str
