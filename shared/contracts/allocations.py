"""`aidline.allocations` — produced by the allocation service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.contracts.topics import ALLOCATIONS
from shared.domain import DomainEvent, EventRegistry

registry = EventRegistry(source="/aidline/allocation", topic=ALLOCATIONS)


@registry.register
@dataclass(frozen=True, kw_only=True)
class AllocationProposed(DomainEvent):
    TYPE = "allocation.proposed"
    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    hub: str
    handover_by: date
    rationale: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class AllocationApproved(DomainEvent):
    TYPE = "allocation.approved"
    approved_by: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class AllocationRejected(DomainEvent):
    TYPE = "allocation.rejected"
    reason: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class AllocationCancelled(DomainEvent):
    TYPE = "allocation.cancelled"
    reason: str  # pledge reduced/withdrawn, requirement cancelled, shipment lost


@registry.register
@dataclass(frozen=True, kw_only=True)
class ShortfallRecorded(DomainEvent):
    TYPE = "shortfall.recorded"
    requirement_id: str
    open_quantity: int
    reason: str
