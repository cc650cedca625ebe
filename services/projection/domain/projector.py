"""How each event changes the read-model rows (pure: the caller loads and stores the rows).

A batch of events is applied to the rows it touches: `keys_of` names them, the caller loads
those that exist, `Changes.apply` runs each event in order, and `Changes.dirty` lists what to
write back. Rows are created on first touch, so an event that arrives before the one that
introduces its stream (topics are read in parallel) still counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar, overload
from uuid import UUID

from services.projection.domain.history import OWN_ROW, History, Recorder
from services.projection.domain.model import (
    Allocation,
    Decision,
    ItemRow,
    Pledge,
    Requirement,
    Row,
    Shipment,
)
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationCancelled,
    AllocationProposed,
    AllocationRejected,
    ShortfallRecorded,
)
from shared.contracts.deliveries import (
    ShipmentArrivedAtHub,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentDelayed,
    ShipmentDepartedHub,
    ShipmentDispatched,
    ShipmentEumDiscrepancy,
    ShipmentHandedOver,
    ShipmentInspected,
    ShipmentLost,
    ShipmentPlanned,
    ShipmentReceived,
)
from shared.contracts.requests import (
    CatalogueItemAdded,
    DecisionRecorded,
    PledgeAnnounced,
    PledgeConfirmed,
    PledgeReduced,
    PledgeWithdrawn,
    RequirementAmended,
    RequirementCancelled,
    RequirementDeliveryRecorded,
    RequirementEndorsed,
    RequirementFulfilled,
    RequirementSubmitted,
)
from shared.domain import DomainEvent

RowT = TypeVar("RowT", bound=Row)
RecorderT = TypeVar("RecorderT", bound=Recorder)

# Event types of the projection's topics that change none of its tables, each with why. A type
# neither handled nor named here fails tests/unit/test_projection_domain.py: a new event cannot
# be forgotten silently.
IGNORED: dict[type[DomainEvent], str] = {}


@dataclass
class Keys:
    """The rows a batch touches, by table."""

    requirements: set[str] = field(default_factory=set)
    pledges: set[str] = field(default_factory=set)
    allocations: set[str] = field(default_factory=set)
    shipments: set[str] = field(default_factory=set)
    decisions: set[str] = field(default_factory=set)

    def add(self, event: DomainEvent, subject: str) -> None:
        # Which rows depends on the event's class alone: decided once per class (the chain of
        # class tests and prefix checks ran for every event: ~1 µs of a replay's per-event CPU).
        cls = type(event)
        plan = _KEY_PLANS.get(cls)
        if plan is None:
            plan = _KEY_PLANS[cls] = _key_plan(cls)
        plan(self, event, subject)


KeyPlan = Callable[[Keys, Any, str], None]
_KEY_PLANS: dict[type[DomainEvent], KeyPlan] = {}


def _key_plan(cls: type[DomainEvent]) -> KeyPlan:
    """How `Keys.add` names the rows an event of class `cls` touches (the first rule that
    fits, in this order)."""
    prefix = cls.TYPE.split(".", 1)[0] + "."
    if issubclass(cls, DecisionRecorded):
        return lambda keys, e, _s: keys.decisions.add(e.decision_id)
    if issubclass(cls, PledgeAnnounced):
        return lambda keys, e, _s: keys.pledges.add(e.pledge_id)
    if issubclass(cls, CatalogueItemAdded):
        return lambda _keys, _e, _s: None
    if prefix == "pledge.":
        return lambda keys, _e, subject: keys.pledges.add(subject)
    if issubclass(cls, RequirementSubmitted):
        return lambda keys, e, _s: keys.requirements.add(e.requirement_id)
    if prefix == "requirement.":
        return lambda keys, _e, subject: keys.requirements.add(subject)
    if issubclass(cls, AllocationProposed):

        def proposed(keys: Keys, e: AllocationProposed, _s: str) -> None:
            keys.allocations.add(e.allocation_id)
            keys.requirements.add(e.requirement_id)

        return proposed
    if issubclass(cls, ShortfallRecorded):
        return lambda keys, e, _s: keys.requirements.add(e.requirement_id)
    if prefix == "allocation.":
        return lambda keys, _e, subject: keys.allocations.add(subject)
    if issubclass(cls, ShipmentPlanned):

        def planned(keys: Keys, e: ShipmentPlanned, _s: str) -> None:
            keys.shipments.add(e.shipment_id)
            keys.requirements.add(e.requirement_id)

        return planned
    if prefix == "shipment.":
        return lambda keys, _e, subject: keys.shipments.add(subject)
    return lambda _keys, _e, _s: None


def keys_of(events: Iterable[tuple[DomainEvent, str]]) -> Keys:
    keys = Keys()
    for event, subject in events:
        keys.add(event, subject)
    return keys


@dataclass(frozen=True)
class Scope:
    """Whose movement an event describes (for operational-security redaction)."""

    hub: str | None = None
    donor: str | None = None


# The kind of row an event class's own stream is (None: its stream has no row), by class:
# one dict look-up per event instead of splitting its type name.
_OWN_KIND: dict[type[DomainEvent], type[Row] | None] = {}


def _own_kind(cls: type[DomainEvent]) -> type[Row] | None:
    kind = _OWN_KIND.get(cls, Row)
    if kind is Row:
        kind = _OWN_KIND[cls] = OWN_ROW.get(cls.TYPE.split(".", 1)[0])
    return kind


class Changes(Generic[RecorderT]):
    """The rows of one batch, changed in memory event by event; their history recorded in
    `history` (a `History` unless another recorder is given)."""

    @overload
    def __init__(
        self: Changes[History],
        requirements: dict[str, Requirement],
        pledges: dict[str, Pledge],
        allocations: dict[str, Allocation],
        shipments: dict[str, Shipment],
        decisions: dict[str, Decision] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        requirements: dict[str, Requirement],
        pledges: dict[str, Pledge],
        allocations: dict[str, Allocation],
        shipments: dict[str, Shipment],
        decisions: dict[str, Decision] | None,
        history: RecorderT,
    ) -> None: ...

    def __init__(
        self,
        requirements: dict[str, Requirement],
        pledges: dict[str, Pledge],
        allocations: dict[str, Allocation],
        shipments: dict[str, Shipment],
        decisions: dict[str, Decision] | None = None,
        history: Any = None,
    ) -> None:
        self.requirements = requirements
        self.pledges = pledges
        self.allocations = allocations
        self.shipments = shipments
        self.decisions = {} if decisions is None else decisions
        self.items: dict[str, ItemRow] = {}
        # Each event's versions of its own stream's row and its flows into requirements.
        if history is None:
            history = History()
        self.history: RecorderT = history
        self._touched: dict[int, Row] = {}  # the rows the event being applied changed
        self._dirty: dict[type[Row], dict[str, Row]] = {
            Requirement: {},
            Pledge: {},
            Allocation: {},
            Shipment: {},
            Decision: {},
        }

    def handles(self, event_type: type[DomainEvent]) -> bool:
        return event_type in _HANDLERS

    def apply(
        self, event: DomainEvent, subject: str, at: datetime, event_id: UUID | None = None
    ) -> Scope | None:
        """Apply one event (dated `at`, its business time); returns the movement scope of
        shipment events. The rows of its own stream it changed are versioned in `history`."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return None
        self._touched = {}
        scope = handler(self, event, subject, at)
        own = _own_kind(type(event))
        for row in self._touched.values():
            if type(row) is own:
                self.history.version(row, event.TYPE, at, event_id)
        return scope

    def dirty(self, kind: type[RowT]) -> list[RowT]:
        """Changed rows of one table, in key order (so concurrent writers lock alike)."""
        rows = self._dirty[kind]
        return [rows[k] for k in sorted(rows)]  # type: ignore[misc]

    # -- rows, created on first touch ------------------------------------------------------

    def _touch(self, table: dict[str, RowT], kind: type[RowT], key: str) -> RowT:
        row = table.get(key)
        if row is None:
            row = table[key] = kind(key)  # type: ignore[call-arg]
        self._dirty[kind][key] = row
        self._touched[id(row)] = row
        return row

    def _requirement(self, key: str) -> Requirement:
        return self._touch(self.requirements, Requirement, key)

    def _pledge(self, key: str) -> Pledge:
        return self._touch(self.pledges, Pledge, key)

    def _allocation(self, key: str) -> Allocation:
        return self._touch(self.allocations, Allocation, key)

    def _shipment(self, key: str) -> Shipment:
        return self._touch(self.shipments, Shipment, key)

    def _decision(self, key: str) -> Decision:
        return self._touch(self.decisions, Decision, key)

    # -- requirements ----------------------------------------------------------------------

    def _requirement_submitted(self, e: RequirementSubmitted, _s: str, at: datetime) -> None:
        r = self._requirement(e.requirement_id)
        r.item_code, r.unit, r.priority = e.item_code, e.unit, e.priority
        r.needed_by, r.destination, r.requested = e.needed_by, e.destination, e.quantity
        r.submitted_at = at
        r.refresh(at)

    def _requirement_endorsed(self, e: RequirementEndorsed, subject: str, at: datetime) -> None:
        r = self._requirement(subject)
        r.endorsed, r.priority, r.decision_id = True, e.priority, e.decision_id
        r.refresh(at)

    def _requirement_amended(self, e: RequirementAmended, subject: str, at: datetime) -> None:
        r = self._requirement(subject)
        if e.quantity is not None:
            r.requested = e.quantity
        if e.priority is not None:
            r.priority = e.priority
        if e.needed_by is not None:
            r.needed_by = e.needed_by
        r.refresh(at)

    def _requirement_cancelled(self, _e: RequirementCancelled, subject: str, at: datetime) -> None:
        r = self._requirement(subject)
        r.cancelled = True
        r.refresh(at)

    def _requirement_delivery_recorded(
        self, e: RequirementDeliveryRecorded, subject: str, at: datetime
    ) -> None:
        r = self._requirement(subject)
        r.delivered_recorded += e.quantity
        r.refresh(at)

    def _requirement_fulfilled(self, _e: RequirementFulfilled, subject: str, at: datetime) -> None:
        r = self._requirement(subject)
        r.fulfilled = True
        r.refresh(at)

    # -- pledges and the catalogue ---------------------------------------------------------

    def _pledge_announced(self, e: PledgeAnnounced, _s: str, at: datetime) -> None:
        p = self._pledge(e.pledge_id)
        p.donor, p.item_code, p.unit, p.source = e.donor.upper(), e.item_code, e.unit, e.source
        p.available_from, p.value_eur = e.available_from, e.value_eur
        p.announced_quantity = p.quantity = e.quantity
        p.announced_at = p.updated_at = at

    def _pledge_confirmed(self, e: PledgeConfirmed, subject: str, at: datetime) -> None:
        p = self._pledge(subject)
        # (a pledge's stream is read in order, and the request service confirms no withdrawn
        # pledge: a confirmation never follows a withdrawal)
        p.status, p.decision_id = "confirmed", e.decision_id
        p.confirmed_at = p.updated_at = at

    def _pledge_reduced(self, e: PledgeReduced, subject: str, at: datetime) -> None:
        p = self._pledge(subject)
        p.quantity, p.updated_at = e.quantity, at

    def _pledge_withdrawn(self, _e: PledgeWithdrawn, subject: str, at: datetime) -> None:
        p = self._pledge(subject)
        p.status, p.updated_at = "withdrawn", at

    def _item_added(self, e: CatalogueItemAdded, _s: str, _at: datetime) -> None:
        self.items[e.item_code] = ItemRow(e.item_code, e.name, e.capability, e.unit)

    # -- forum decisions -------------------------------------------------------------------

    def _decision_recorded(self, e: DecisionRecorded, _s: str, at: datetime) -> None:
        # What it endorsed and confirmed is marked on those rows by their own events
        # (`decision_id`); here only the meeting and the counts.
        d = self._decision(e.decision_id)
        d.meeting_date, d.reference, d.recorded_at = e.meeting_date, e.reference, at
        d.endorsed, d.confirmed = len(e.endorsed), len(e.confirmed)

    # -- allocations -----------------------------------------------------------------------

    def _allocation_proposed(self, e: AllocationProposed, _s: str, at: datetime) -> None:
        a = self._allocation(e.allocation_id)
        before = a.contribution()
        a.requirement_id, a.pledge_id, a.item_code = e.requirement_id, e.pledge_id, e.item_code
        a.quantity, a.hub, a.handover_by = e.quantity, e.hub, e.handover_by
        a.endorsed_by_decision = e.endorsed_by_decision
        a.confirmed_by_decision = e.confirmed_by_decision
        a.status, a.proposed_at, a.updated_at = "proposed", at, at
        self._allocation_moved(a, before, at, e.TYPE)

    def _allocation_status(self, e: DomainEvent, subject: str, at: datetime) -> None:
        a = self._allocation(subject)
        before = a.contribution()
        a.status, a.updated_at = _ALLOCATION_STATUS[type(e)], at
        self._allocation_moved(a, before, at, e.TYPE)

    def _allocation_moved(
        self, a: Allocation, before: tuple[int, int], at: datetime, event_type: str
    ) -> None:
        after = a.contribution()
        if a.requirement_id and after != before:
            r = self._requirement(a.requirement_id)
            pledged, allocated = after[0] - before[0], after[1] - before[1]
            r.pledged += pledged
            r.allocated += allocated
            r.refresh(at)
            self.history.flow(
                r.requirement_id, event_type, at, pledged=pledged, allocated=allocated
            )

    def _shortfall_recorded(self, e: ShortfallRecorded, _s: str, at: datetime) -> None:
        r = self._requirement(e.requirement_id)
        r.open_shortfall, r.shortfall_reason = e.open_quantity, e.reason
        r.refresh(at)
        self.history.flow(
            r.requirement_id, e.TYPE, at, open_shortfall=r.open_shortfall,
            shortfall_reason=r.shortfall_reason,
        )  # fmt: skip

    # -- shipments -------------------------------------------------------------------------

    def _moved(
        self, subject: str, at: datetime, change: Callable[[Shipment], None], event_type: str
    ) -> Scope:
        s = self._shipment(subject)
        before = s.contribution()
        change(s)
        s.updated_at = at
        after = s.contribution()
        if s.requirement_id and after != before:
            r = self._requirement(s.requirement_id)
            in_transit, delivered = after[0] - before[0], after[1] - before[1]
            r.in_transit += in_transit
            r.delivered_shipments += delivered
            r.refresh(at)
            self.history.flow(
                r.requirement_id, event_type, at, in_transit=in_transit,
                delivered_shipments=delivered,
            )  # fmt: skip
        return Scope(hub=s.hub or None, donor=s.donor or None)

    def _shipment_scope(self, _e: DomainEvent, subject: str, _at: datetime) -> Scope:
        known = self.shipments.get(subject)
        return Scope(hub=known.hub or None, donor=known.donor or None) if known else Scope()

    def _shipment_planned(self, e: ShipmentPlanned, _s: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.allocation_id, s.requirement_id, s.pledge_id = (
                e.allocation_id,
                e.requirement_id,
                e.pledge_id,
            )
            s.donor, s.item_code, s.quantity = e.donor.upper(), e.item_code, e.quantity
            s.hub, s.handover_point, s.planned_at = e.hub, e.handover_point, at
            s.endorsed_by_decision = e.endorsed_by_decision
            s.confirmed_by_decision = e.confirmed_by_decision

        return self._moved(e.shipment_id, at, change, e.TYPE)

    def _shipment_dispatched(self, e: ShipmentDispatched, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status, s.mode, s.carrier_ref, s.dispatched_at = (
                "dispatched",
                e.mode,
                e.carrier_ref,
                at,
            )

        return self._moved(subject, at, change, ShipmentDispatched.TYPE)

    def _shipment_arrived(self, e: ShipmentArrivedAtHub, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status, s.hub, s.arrived_at = "at_hub", e.hub, at

        return self._moved(subject, at, change, ShipmentArrivedAtHub.TYPE)

    def _shipment_inspected(self, e: ShipmentInspected, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status = "held" if e.result == "held" else "cleared"
            s.inspected_at = at

        return self._moved(subject, at, change, ShipmentInspected.TYPE)

    def _shipment_departed(self, _e: ShipmentDepartedHub, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status, s.departed_at = "departed", at

        return self._moved(subject, at, change, ShipmentDepartedHub.TYPE)

    def _shipment_handed_over(self, e: ShipmentHandedOver, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status, s.handed_over_at = "handed_over", at
            s.received_good, s.damaged, s.short = e.received_good, e.damaged, e.short

        return self._moved(subject, at, change, ShipmentHandedOver.TYPE)

    def _shipment_received(self, _e: ShipmentReceived, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.status, s.received_at = "received", at

        return self._moved(subject, at, change, ShipmentReceived.TYPE)

    def _shipment_delayed(self, e: ShipmentDelayed, subject: str, at: datetime) -> Scope:
        def change(s: Shipment) -> None:
            s.delayed, s.eta = True, e.new_eta

        return self._moved(subject, at, change, ShipmentDelayed.TYPE)

    def _shipment_lost(self, e: ShipmentLost, subject: str, at: datetime) -> Scope:
        # Losses add up; the shipment ends as lost only when nothing remains on it (as the
        # delivery service decides), else it moves on with what is left.
        def change(s: Shipment) -> None:
            s.lost_at, s.lost_quantity = at, s.lost_quantity + e.quantity
            if s.lost_quantity >= s.quantity:
                s.status = "lost"

        return self._moved(subject, at, change, ShipmentLost.TYPE)

    def _shipment_cancelled(self, e: ShipmentCancelled, subject: str, at: datetime) -> Scope:
        if subject not in self.shipments:  # nothing planned here to cancel
            return Scope()

        def change(s: Shipment) -> None:
            s.status = "cancelled"

        return self._moved(subject, at, change, ShipmentCancelled.TYPE)


_ALLOCATION_STATUS: dict[type[DomainEvent], str] = {
    AllocationApproved: "approved",
    AllocationRejected: "rejected",
    AllocationCancelled: "cancelled",
}

# The method that applies each event class, kept here rather than as bound methods on each
# `Changes`: those would make every batch's `Changes`, with all the rows it loaded, a
# reference cycle, left for the garbage collector (12 of 12 batches in a run of
# bench.projection_cpu) instead of freed when the batch ends.
_HANDLERS: dict[type[DomainEvent], Callable[[Any, Any, str, datetime], Scope | None]] = {
    RequirementSubmitted: Changes._requirement_submitted,
    RequirementEndorsed: Changes._requirement_endorsed,
    RequirementAmended: Changes._requirement_amended,
    RequirementCancelled: Changes._requirement_cancelled,
    RequirementDeliveryRecorded: Changes._requirement_delivery_recorded,
    RequirementFulfilled: Changes._requirement_fulfilled,
    PledgeAnnounced: Changes._pledge_announced,
    PledgeConfirmed: Changes._pledge_confirmed,
    PledgeReduced: Changes._pledge_reduced,
    PledgeWithdrawn: Changes._pledge_withdrawn,
    CatalogueItemAdded: Changes._item_added,
    DecisionRecorded: Changes._decision_recorded,
    AllocationProposed: Changes._allocation_proposed,
    AllocationApproved: Changes._allocation_status,
    AllocationRejected: Changes._allocation_status,
    AllocationCancelled: Changes._allocation_status,
    ShortfallRecorded: Changes._shortfall_recorded,
    ShipmentPlanned: Changes._shipment_planned,
    ShipmentDispatched: Changes._shipment_dispatched,
    ShipmentArrivedAtHub: Changes._shipment_arrived,
    ShipmentInspected: Changes._shipment_inspected,
    ShipmentDepartedHub: Changes._shipment_departed,
    ShipmentHandedOver: Changes._shipment_handed_over,
    ShipmentReceived: Changes._shipment_received,
    ShipmentDelayed: Changes._shipment_delayed,
    ShipmentLost: Changes._shipment_lost,
    ShipmentCancelled: Changes._shipment_cancelled,
    # Shown nowhere in the tables, but their audit rows need whose shipment it is: a
    # refused cancellation leaves the shipment moving; a discrepancy is in its timeline.
    ShipmentCancellationRefused: Changes._shipment_scope,
    ShipmentEumDiscrepancy: Changes._shipment_scope,
}
