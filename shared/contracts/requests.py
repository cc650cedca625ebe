"""`aidline.requests` — produced by the request service."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from shared.contracts.topics import REQUESTS
from shared.domain import DomainEvent, EventRegistry

registry = EventRegistry(source="/aidline/request", topic=REQUESTS)

PledgeSource = Literal["stock", "procurement", "pooled"]


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementSubmitted(DomainEvent):
    TYPE = "requirement.submitted"
    requirement_id: str
    item_code: str
    quantity: int
    unit: str
    priority: int  # 1 critical … 4 routine
    needed_by: date
    destination: str
    justification: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementEndorsed(DomainEvent):
    TYPE = "requirement.endorsed"
    priority: int  # the forum may re-rank
    decision_id: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementAmended(DomainEvent):
    TYPE = "requirement.amended"
    quantity: int | None = None
    priority: int | None = None
    needed_by: date | None = None


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementCancelled(DomainEvent):
    TYPE = "requirement.cancelled"
    reason: str


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementDeliveryRecorded(DomainEvent):
    TYPE = "requirement.delivery_recorded"
    shipment_id: str
    quantity: int


@registry.register
@dataclass(frozen=True, kw_only=True)
class RequirementFulfilled(DomainEvent):
    TYPE = "requirement.fulfilled"


@registry.register
@dataclass(frozen=True, kw_only=True)
class PledgeAnnounced(DomainEvent):
    TYPE = "pledge.announced"
    pledge_id: str
    donor: str  # ISO 3166-1 alpha-2, upper case
    item_code: str
    quantity: int
    unit: str
    source: PledgeSource
    available_from: date
    value_eur: float | None = None
    source_url: str | None = None


@registry.register
@dataclass(frozen=True, kw_only=True)
class PledgeConfirmed(DomainEvent):
    TYPE = "pledge.confirmed"
    decision_id: str  # the forum decision that hands the pledge to execution


@registry.register
@dataclass(frozen=True, kw_only=True)
class PledgeReduced(DomainEvent):
    TYPE = "pledge.reduced"
    quantity: int  # the new total


@registry.register
@dataclass(frozen=True, kw_only=True)
class PledgeWithdrawn(DomainEvent):
    TYPE = "pledge.withdrawn"
    reason: str


@dataclass(frozen=True, kw_only=True)
class Endorsement:
    requirement_id: str
    priority: int


@registry.register
@dataclass(frozen=True, kw_only=True)
class DecisionRecorded(DomainEvent):
    """A forum decision (stream `DEC-…`): the meeting, and what it endorsed and confirmed.

    The `requirement.endorsed` / `pledge.confirmed` events it caused carry its `decision_id` and
    are appended in the same transaction, so every confirmation traces back to its meeting.
    """

    TYPE = "decision.recorded"
    decision_id: str
    meeting_date: date
    reference: str
    endorsed: list[Endorsement] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # pledge ids


@registry.register
@dataclass(frozen=True, kw_only=True)
class CatalogueItemAdded(DomainEvent):
    """An admin added an item to the catalogue (the base catalogue ships with the project)."""

    TYPE = "catalogue.item_added"
    item_code: str
    name: str
    capability: str
    unit: str
    eum_class: str
    substitutes: list[str] = field(default_factory=list)
