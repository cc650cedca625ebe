"""`aidline.allocations` — produced by the allocation service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.contracts.topics import ALLOCATIONS
from shared.domain import DomainEvent, EventRegistry

registry = EventRegistry(source="/aidline/allocation", topic=ALLOCATIONS)


@registry.register
@dataclass(frozen=True, kw_only=True)
class AllocationProposed(DomainEvent):
    """A pledge's quantity proposed for a requirement. Its lineage (v2): `endorsed_by_decision`
    and `confirmed_by_decision`, the forum decisions that endorsed the requirement and confirmed
    the pledge; null when not known (a v1 event, or state learnt before decisions were kept)."""

    TYPE = "allocation.proposed"
    VERSION = 2
    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    hub: str
    handover_by: date
    rationale: str
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None


@registry.upcaster(AllocationProposed.TYPE, 1)
def _proposed_v1(data: dict[str, Any]) -> dict[str, Any]:
    # A v1 event names no decisions, and its requirement's and pledge's are on another topic.
    return {**data, "endorsed_by_decision": None, "confirmed_by_decision": None}


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
