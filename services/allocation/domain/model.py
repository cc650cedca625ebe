"""What the planner sees of needs, pledges and allocations, and what it decides (pure values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

NeedStatus = Literal["submitted", "endorsed", "cancelled", "fulfilled"]
OfferStatus = Literal["announced", "confirmed", "withdrawn"]


@dataclass(frozen=True)
class Policy:
    """Planning settings.

    `lead_days`: days from a pledge's `available_from` to handover at the border (transport to
    the hub, inspection, onward movement). A pledge is on time for a requirement when
    `available_from + lead_days <= needed_by`.
    """

    lead_days: int = 7


@dataclass(frozen=True)
class Need:
    """A requirement as the allocation service keeps it. Only `endorsed` ones are matched."""

    id: str
    item_code: str
    quantity: int
    priority: int  # 1 critical … 4 routine
    needed_by: date
    status: NeedStatus = "endorsed"
    status_reason: str = ""
    decision_id: str | None = None  # the forum decision that endorsed it; None: not known


@dataclass(frozen=True)
class Offer:
    """A pledge as the allocation service keeps it. Only `confirmed` ones are matched.

    `quantity` is what the pledge can still give: its current total less units lost in transit.
    """

    id: str
    item_code: str
    quantity: int
    available_from: date
    donor: str = ""
    status: OfferStatus = "confirmed"
    status_reason: str = ""
    decision_id: str | None = None  # the forum decision that confirmed it; None: not known


@dataclass(frozen=True)
class Placed:
    """A live (proposed or approved) allocation. `quantity` excludes units lost in transit."""

    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    approved_by: str | None = None  # None while proposed
    # Terms it was proposed with; None when unknown (then not compared on re-planning).
    hub: str | None = None
    handover_by: date | None = None

    @property
    def approved(self) -> bool:
        return self.approved_by is not None

    @property
    def pair(self) -> tuple[str, str]:
        return (self.requirement_id, self.pledge_id)


@dataclass(frozen=True)
class Recorded:
    """The last shortfall published for a requirement (so identical ones are not repeated)."""

    open_quantity: int
    reason: str


@dataclass(frozen=True)
class Proposal:
    """A new allocation. `approved_by` is set when it replaces an approved (committed) one.

    The lineage: the decisions that endorsed the requirement and confirmed the pledge (None:
    not known)."""

    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    hub: str
    handover_by: date
    rationale: str
    replaces: str | None = None
    approved_by: str | None = None
    endorsed_by_decision: str | None = None
    confirmed_by_decision: str | None = None


@dataclass(frozen=True)
class Cancellation:
    allocation_id: str
    reason: str


@dataclass(frozen=True)
class Shortfall:
    requirement_id: str
    open_quantity: int  # 0: a shortfall recorded earlier is now covered
    reason: str


@dataclass(frozen=True)
class Plan:
    """The changes one planning step makes, in a fixed order (same input, same plan)."""

    cancellations: list[Cancellation] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.cancellations or self.proposals or self.shortfalls)

    def merge(self, other: Plan) -> Plan:
        return Plan(
            self.cancellations + other.cancellations,
            self.proposals + other.proposals,
            self.shortfalls + other.shortfalls,
        )


@dataclass(frozen=True)
class FamilyState:
    """Everything the planner needs about one item family (items joined by substitution).

    `placed` must hold every live allocation drawing on the family's pledges, including those of
    requirements that are no longer open; `needs` every requirement those allocations serve plus
    every endorsed one; `rejected` the (requirement, pledge) pairs a planner turned down.
    """

    needs: list[Need]
    offers: list[Offer]
    placed: list[Placed] = field(default_factory=list)
    rejected: frozenset[tuple[str, str]] = frozenset()
    shortfalls: Mapping[str, Recorded] = field(default_factory=dict)
