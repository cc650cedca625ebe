"""The read models reconcile with the write side: random valid command sequences run through
the write services' own domain (the catalogue, a requirement, pledges, forum decisions,
allocations and their shipments, shortfalls), the events are applied by the projector as the
projection applies them (each stream in order, streams interleaved, in batches that load only
the rows `keys_of` names), and every row of the read models equals what is recomputed from the
write side's own state and the times its events were applied; so does every figure of each
decision's execution view (confirmed → allocated → … → received, lost).

Pure and fast, so `make mutation` runs it against every mutant of the projector.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocation.domain import Allocation, Proposal
from services.delivery.domain.shipment import Shipment, Status
from services.projection.domain import Changes, keys_of, requirement_status
from services.projection.domain import model as rows
from services.projection.domain.execution import trace
from services.request.domain.catalogue import CatalogueItem
from services.request.domain.decision import Decision
from services.request.domain.pledge import Pledge, PledgeStatus
from services.request.domain.requirement import Requirement, RequirementStatus
from shared.catalogue import base_items
from shared.contracts.allocations import AllocationProposed, ShortfallRecorded
from shared.contracts.deliveries import (
    ShipmentArrivedAtHub,
    ShipmentCancellationRefused,
    ShipmentDepartedHub,
    ShipmentDispatched,
    ShipmentEumDiscrepancy,
    ShipmentHandedOver,
    ShipmentInspected,
    ShipmentLost,
    ShipmentPlanned,
    ShipmentReceived,
)
from shared.contracts.requests import PledgeAnnounced, PledgeConfirmed, RequirementSubmitted
from shared.domain import Aggregate, DomainError, DomainEvent

ITEMS = base_items()
ITEM = ITEMS["ART-155-HE"]
TODAY = date(2026, 12, 3)
START = datetime(2026, 12, 3, tzinfo=UTC)
R = "REQ-1"
LANES = 3  # pledges, each with the allocation and the shipment it becomes
DONORS = ("pl", "DE", "fr")  # as announced; the board shows nations upper-case

# The delivery service's status -> the board's name for it.
BOARD_STATUS = {
    Status.PLANNED: "planned",
    Status.DISPATCHED: "dispatched",
    Status.ARRIVED_AT_HUB: "at_hub",
    Status.HELD: "held",
    Status.INSPECTED: "cleared",
    Status.DEPARTED_HUB: "departed",
    Status.HANDED_OVER: "handed_over",
    Status.RECEIVED: "received",
    Status.CANCELLED: "cancelled",
    Status.LOST: "lost",
}
MOVING = {Status.DISPATCHED, Status.ARRIVED_AT_HUB, Status.HELD, Status.INSPECTED,
          Status.DEPARTED_HUB}  # fmt: skip
HANDED = {Status.HANDED_OVER, Status.RECEIVED}
FUNNEL = ("confirmed", "proposed", "allocated", "dispatched", "at_hub", "handed_over",
          "received", "lost")  # fmt: skip

ACTIONS = (
    "decide", "amend", "reprioritise", "cancel requirement", "shortfall",
    "reduce", "withdraw",
    "approve", "reject", "cancel allocation",
    "dispatch", "arrive", "hold", "pass", "depart", "hand over", "receive", "delay", "lose",
)  # fmt: skip
# A lane's next step on the way to the border: most sequences should get somewhere.
NEXT = {
    Status.PLANNED: "dispatch",
    Status.DISPATCHED: "arrive",
    Status.ARRIVED_AT_HUB: "pass",
    Status.HELD: "pass",
    Status.INSPECTED: "depart",
    Status.DEPARTED_HUB: "hand over",
    Status.HANDED_OVER: "receive",
}
ADVANCE = "advance"


@dataclass
class World:
    """The write side: what the request, allocation and delivery services hold."""

    requirement: Requirement
    pledges: list[Pledge]
    catalogue: list[CatalogueItem]
    decisions: list[Decision] = field(default_factory=list)
    allocations: dict[int, Allocation] = field(default_factory=dict)
    shipments: dict[int, Shipment] = field(default_factory=dict)
    shortfalls: list[DomainEvent] = field(default_factory=list)

    @classmethod
    def start(cls, quantity: int, pledged: list[int]) -> World:
        requirement = Requirement.submit(
            R, item=ITEM, quantity=quantity, priority=2, needed_by=TODAY + timedelta(days=90),
            destination="Lviv", justification="-",
        )  # fmt: skip
        pledges = [
            Pledge.announce(
                f"PLG-{i}",
                donor=DONORS[i],
                item=ITEM,
                quantity=q,
                source="stock",
                available_from=TODAY + timedelta(days=i),
                value_eur=1000.0 * q,
            )
            for i, q in enumerate(pledged)
        ]
        added = CatalogueItem.add(
            code="ART-NEW", name="New shell", capability="artillery", unit="rounds",
            eum_class="none", substitutes=["ART-155-HE"], known=ITEMS,
        )  # fmt: skip
        return cls(requirement, pledges, [added])

    def do(self, action: str, lane: int, amount: int) -> None:
        """One command, as its service would run it; a command the domain refuses changes
        nothing (the user gets a 409)."""
        lane %= len(self.pledges)
        shipment = self.shipments.get(lane)
        if action == ADVANCE:
            action = "approve" if shipment is None else NEXT.get(shipment.status, "")
        with contextlib.suppress(DomainError):
            self._do(action, lane, amount, shipment)

    def _do(self, action: str, lane: int, amount: int, shipment: Shipment | None) -> None:
        pledge = self.pledges[lane]
        match action:
            case "decide":
                self._decide(pledge)
            case "amend":
                self.requirement.amend(quantity=amount)
            case "reprioritise":
                self.requirement.amend(priority=1 + amount % 4, needed_by=TODAY + timedelta(amount))
            case "cancel requirement":
                self.requirement.cancel("no longer needed")
            case "shortfall":  # the allocation service's planner says what stays open
                self.shortfalls.append(
                    ShortfallRecorded(requirement_id=R, open_quantity=amount, reason=f"{amount}")
                )
            case "reduce":
                pledge.reduce(amount)
            case "withdraw":
                pledge.withdraw("needed at home")
                self._cancel(lane)  # the allocation service's answer
            case "approve":
                self._allocation(lane, pledge).approve("planner")
                self._plan(lane)
            case "reject":
                self._allocation(lane, pledge).reject("not this pledge")
            case "cancel allocation":
                self._cancel(lane)
            case _ if shipment is not None:
                self._move(shipment, action, amount)

    def _decide(self, pledge: Pledge) -> None:
        """A forum decision: endorse the need and confirm the pledge, where still open (a
        decision the request service refuses is not recorded at all)."""
        endorse = [(self.requirement, None)] if self.requirement.decision_id is None else []
        confirm = [pledge] if pledge.status is PledgeStatus.ANNOUNCED else []
        if self.requirement.status in (RequirementStatus.CANCELLED, RequirementStatus.FULFILLED):
            endorse = []
        if endorse or confirm:
            n = len(self.decisions) + 1
            self.decisions.append(
                Decision.record(
                    f"DEC-{n}",
                    meeting_date=TODAY + timedelta(days=n),
                    reference=f"UDCG-{n}",
                    endorse=endorse,
                    confirm=confirm,
                )
            )

    def _allocation(self, lane: int, pledge: Pledge) -> Allocation:
        """The lane's allocation, proposed on first use with the lineage known then."""
        if lane not in self.allocations:
            self.allocations[lane] = Allocation.propose(
                f"AL-{lane}",
                Proposal(
                    requirement_id=R,
                    pledge_id=pledge.id,
                    item_code=ITEM.code,
                    quantity=pledge.quantity,
                    hub="RO-SUC",
                    handover_by=TODAY + timedelta(days=60),
                    rationale="-",
                    endorsed_by_decision=self.requirement.decision_id,
                    confirmed_by_decision=pledge.decision_id,
                ),
            )
        return self.allocations[lane]

    def _cancel(self, lane: int) -> None:
        allocation = self.allocations.get(lane)
        if allocation is not None and allocation.live:
            allocation.cancel("pledge withdrawn")
            if lane in self.shipments:  # the delivery service's answer
                self.shipments[lane].respond_to_cancellation("pledge withdrawn")

    def _plan(self, lane: int) -> None:
        allocation = self.allocations[lane]
        self.shipments[lane] = Shipment.plan(
            f"SHP-{lane}", allocation_id=allocation.id, requirement_id=R,
            pledge_id=allocation.pledge_id, donor=self.pledges[lane].donor,
            item_code=ITEM.code, quantity=allocation.quantity, hub=allocation.hub,
            handover_point="Siret", eum_class="none",
            endorsed_by_decision=allocation.endorsed_by_decision,
            confirmed_by_decision=allocation.confirmed_by_decision,
        )  # fmt: skip

    def _move(self, shipment: Shipment, action: str, amount: int) -> None:
        match action:
            case "dispatch":
                shipment.dispatch("road", f"CR-{shipment.id}", ())
            case "arrive":
                shipment.arrive()
            case "hold":
                shipment.inspect("held", "papers missing")
            case "pass":
                shipment.inspect("passed")
            case "depart":
                shipment.depart()
            case "hand over":
                good = min(amount, shipment.remaining)
                damaged = (shipment.remaining - good) // 2
                shipment.hand_over(good, damaged, shipment.remaining - good - damaged, ())
            case "receive":
                shipment.receive()
                # The request service records the receipt against the requirement.
                self.requirement.record_delivery(shipment.id, shipment.received_good)
            case "delay":
                shipment.delay("convoy waits", TODAY + timedelta(days=amount), TODAY)
            case "lose":
                shipment.report_loss(amount, "struck in transit")

    def streams(self) -> dict[str, list[DomainEvent]]:
        """Every stream's events, in its order."""
        aggregates: list[Aggregate] = [
            self.requirement, *self.pledges, *self.catalogue, *self.decisions,
            *self.allocations.values(), *self.shipments.values(),
        ]  # fmt: skip
        out = {a.id: list(a.pending) for a in aggregates}
        out[f"shortfall-{R}"] = list(self.shortfalls)
        return out


# -- the projection's side: batches over stored rows ------------------------------------------


@dataclass
class Applied:
    """When each event was applied (the projector dates rows by it)."""

    times: dict[str, list[tuple[type[DomainEvent], datetime]]] = field(default_factory=dict)
    # The last event that changed anything of the requirement: one of its own or its
    # shortfall's, or one that changed what an allocation or a shipment adds to it.
    requirement_changed: datetime | None = None
    _replicas: dict[str, Allocation | Shipment] = field(default_factory=dict)

    def record(self, subject: str, event: DomainEvent, at: datetime) -> None:
        self.times.setdefault(subject, []).append((type(event), at))
        if subject in (R, f"shortfall-{R}") or (
            subject.startswith(("AL-", "SHP-")) and self._contribution_changed(subject, event)
        ):
            self.requirement_changed = at

    def _contribution_changed(self, subject: str, event: DomainEvent) -> bool:
        """As the write side counts it: what the allocation (live, approved) or the shipment
        (in transit, handed over) adds to the requirement, before and after the event."""
        kind = Allocation if subject.startswith("AL-") else Shipment
        replica = self._replicas.setdefault(subject, kind(subject))
        before = _adds(replica)
        replica.apply(event)
        return _adds(replica) != before

    def last(
        self, stream: str, *types: type[DomainEvent], but: tuple[type[DomainEvent], ...] = ()
    ) -> datetime | None:
        """The time of the stream's last event of one of `types` (any type if none, `but`
        these)."""
        found = [
            t
            for kind, t in self.times.get(stream, [])
            if (not types or kind in types) and kind not in but
        ]
        return found[-1] if found else None

    def first(self, stream: str, *types: type[DomainEvent]) -> datetime | None:
        found = [t for kind, t in self.times.get(stream, []) if kind in types]
        return found[0] if found else None


def _adds(a: Allocation | Shipment) -> tuple[int, int]:
    if isinstance(a, Allocation):
        return (a.quantity if a.live else 0), (a.quantity if a.status == "approved" else 0)
    return (a.remaining if a.status in MOVING else 0), (
        a.received_good if a.status in HANDED else 0
    )


TABLES = ("requirements", "pledges", "allocations", "shipments", "decisions")


def _project(
    streams: dict[str, list[DomainEvent]], picks: list[int], sizes: list[int]
) -> tuple[dict[str, dict[str, Any]], Applied]:
    """The events read as the projection reads them: each stream in order (one partition), the
    streams interleaved as `picks` says, applied in batches of `sizes`; each batch loads only
    the rows `keys_of` names and writes back what it changed."""
    queues = {sid: list(events) for sid, events in streams.items() if events}
    order: list[tuple[str, DomainEvent]] = []
    pick = iter(picks)
    while queues:
        sid = sorted(queues)[next(pick, 0) % len(queues)]
        order.append((sid, queues[sid].pop(0)))
        if not queues[sid]:
            del queues[sid]
    stored: dict[str, dict[str, Any]] = {table: {} for table in (*TABLES, "items")}
    applied = Applied()
    size, n = iter(sizes), 0
    while n < len(order):
        batch = order[n : n + max(1, next(size, 1))]
        keys = keys_of((event, subject) for subject, event in batch)
        named = {table: set(getattr(keys, table)) for table in TABLES}
        # As the projection loads them: the requirements of the allocations and shipments too.
        for table in ("allocations", "shipments"):
            named["requirements"] |= {
                stored[table][k].requirement_id for k in named[table] if k in stored[table]
            }
        loaded = {
            table: {k: copy.copy(stored[table][k]) for k in named[table] if k in stored[table]}
            for table in TABLES
        }
        changes = Changes(*(loaded[table] for table in TABLES))
        for subject, event in batch:
            at = START + timedelta(seconds=n)
            changes.apply(event, subject, at)
            applied.record(subject, event, at)
            n += 1
        kinds: tuple[type[rows.Row], ...] = (rows.Requirement, rows.Pledge, rows.Allocation,
                                             rows.Shipment, rows.Decision)  # fmt: skip
        for table, kind in zip(TABLES, kinds, strict=True):
            dirty = {row.key: row for row in changes.dirty(kind)}
            # A row the batch changed was named by keys_of, so it was loaded, not made anew.
            assert set(dirty) <= named[table], (table, set(dirty), named[table])
            stored[table].update(dirty)
        stored["items"].update(changes.items)
    return stored, applied


# -- what the write side says each row must be -------------------------------------------------


def _shipment_row(s: Shipment, applied: Applied) -> dict[str, Any]:
    def at(kind: type[DomainEvent]) -> datetime | None:
        return applied.last(s.id, kind)

    return {
        "shipment_id": s.id, "allocation_id": s.allocation_id, "requirement_id": s.requirement_id,
        "pledge_id": s.pledge_id, "donor": s.donor.upper(), "item_code": s.item_code,
        "quantity": s.quantity, "hub": s.hub, "handover_point": s.handover_point,
        "status": BOARD_STATUS[s.status], "mode": s.mode, "carrier_ref": s.carrier_ref,
        "eta": s.eta, "delayed": s.eta is not None,
        "planned_at": at(ShipmentPlanned), "dispatched_at": at(ShipmentDispatched),
        "arrived_at": at(ShipmentArrivedAtHub), "inspected_at": at(ShipmentInspected),
        "departed_at": at(ShipmentDepartedHub), "handed_over_at": at(ShipmentHandedOver),
        "received_at": at(ShipmentReceived), "lost_at": at(ShipmentLost),
        "received_good": s.received_good, "damaged": s.damaged, "short": s.short,
        "lost_quantity": s.lost,
        # A refused cancellation and a serial discrepancy change nothing on the row.
        "updated_at": applied.last(
            s.id, but=(ShipmentCancellationRefused, ShipmentEumDiscrepancy)
        ),
        "endorsed_by_decision": s.endorsed_by_decision,
        "confirmed_by_decision": s.confirmed_by_decision,
    }  # fmt: skip


def _pledge_row(p: Pledge, applied: Applied) -> dict[str, Any]:
    announced = applied.first(p.id, PledgeAnnounced)
    return {
        "pledge_id": p.id, "donor": p.donor.upper(), "item_code": p.item_code, "unit": p.unit,
        "source": p.source, "available_from": p.available_from,
        "announced_quantity": p.pending[0].quantity,  # type: ignore[attr-defined]
        "quantity": p.quantity, "value_eur": p.value_eur, "status": p.status.value,
        "announced_at": announced, "confirmed_at": applied.last(p.id, PledgeConfirmed),
        "updated_at": applied.last(p.id), "decision_id": p.decision_id,
    }  # fmt: skip


def _allocation_row(a: Allocation, applied: Applied) -> dict[str, Any]:
    return {
        "allocation_id": a.id, "requirement_id": a.requirement_id, "pledge_id": a.pledge_id,
        "item_code": a.item_code, "quantity": a.quantity, "hub": a.hub,
        "handover_by": a.handover_by, "status": a.status,
        "proposed_at": applied.last(a.id, AllocationProposed),
        "updated_at": applied.last(a.id),
        "endorsed_by_decision": a.endorsed_by_decision,
        "confirmed_by_decision": a.confirmed_by_decision,
    }  # fmt: skip


def _requirement_row(w: World, applied: Applied) -> dict[str, Any]:
    req = w.requirement
    shipped = w.shipments.values()
    figures: dict[str, Any] = {
        "requested": req.quantity,
        "allocated": sum(a.quantity for a in w.allocations.values() if a.status == "approved"),
        "in_transit": sum(s.remaining for s in shipped if s.status in MOVING),
    }
    flags: dict[str, Any] = {
        "endorsed": req.decision_id is not None,
        "cancelled": req.status is RequirementStatus.CANCELLED,
        "fulfilled": req.status is RequirementStatus.FULFILLED,
    }
    delivered_shipments = sum(s.received_good for s in shipped if s.status in HANDED)
    shortfall = w.shortfalls[-1] if w.shortfalls else None
    status = requirement_status(
        **figures, **flags, delivered=max(delivered_shipments, req.delivered)
    )
    return figures | flags | {
        "requirement_id": R, "item_code": req.item_code, "unit": req.unit,
        "priority": req.priority, "needed_by": req.needed_by, "destination": req.destination,
        "pledged": sum(a.quantity for a in w.allocations.values() if a.live),
        "delivered_shipments": delivered_shipments, "delivered_recorded": req.delivered,
        "open_shortfall": getattr(shortfall, "open_quantity", None),
        "shortfall_reason": getattr(shortfall, "reason", None),
        "status": status, "submitted_at": applied.first(R, RequirementSubmitted),
        "decision_id": req.decision_id, "updated_at": applied.requirement_changed,
    }  # fmt: skip


def _decision_row(d: Decision, applied: Applied) -> dict[str, Any]:
    return {
        "decision_id": d.id, "meeting_date": d.meeting_date, "reference": d.reference,
        "endorsed": len(d.endorsed), "confirmed": len(d.confirmed),
        "recorded_at": applied.last(d.id),
    }  # fmt: skip


def _as_row(row: Any) -> dict[str, Any]:
    return dict(row.as_row())


def _funnel(w: World, applied: Applied, allocations: list[Allocation], shipments: list[Shipment],
            confirmed: int) -> dict[str, int]:  # fmt: skip
    """A line's quantities at each step, from the write side's aggregates and the events they
    emitted (a shipment reached a step when it emitted that step's event)."""
    live = [s for s in shipments if s.status is not Status.CANCELLED]

    def reached(s: Shipment, kind: type[DomainEvent]) -> bool:
        return applied.first(s.id, kind) is not None

    return {
        "confirmed": confirmed,
        "proposed": sum(a.quantity for a in allocations if a.status == "proposed"),
        "allocated": sum(a.quantity for a in allocations if a.status == "approved"),
        "dispatched": sum(s.quantity for s in live if reached(s, ShipmentDispatched)),
        "at_hub": sum(s.quantity for s in live if reached(s, ShipmentArrivedAtHub)),
        "handed_over": sum(s.received_good for s in live if s.status in HANDED),
        "received": sum(s.received_good for s in live if reached(s, ShipmentReceived)),
        "lost": sum(s.lost for s in live),
    }


def _execution(w: World, d: Decision, applied: Applied) -> dict[tuple[str, str], dict[str, int]]:
    """Each line of decision `d` (the requirement it endorsed, the pledges it confirmed): what
    executes it, by lineage where the allocation or shipment carries it, else by the line's own
    decision (a requirement is endorsed, a pledge confirmed, once)."""
    by_allocation = {a.id: a for a in w.allocations.values()}
    lines: dict[tuple[str, str], dict[str, int]] = {}
    if any(e.requirement_id == R for e in d.endorsed):
        own = w.requirement.decision_id

        def of_requirement(x: Allocation | Shipment) -> bool:
            allocation = by_allocation.get(getattr(x, "allocation_id", x.id))
            known = x.endorsed_by_decision or (allocation and allocation.endorsed_by_decision)
            return (known or own) == d.id

        lines["requirement", R] = _funnel(
            w, applied, [a for a in w.allocations.values() if of_requirement(a)],
            [s for s in w.shipments.values() if of_requirement(s)], w.requirement.quantity,
        )  # fmt: skip
    for p in w.pledges:
        if p.id not in d.confirmed:
            continue

        def of_pledge(x: Allocation | Shipment, p: Pledge = p) -> bool:
            allocation = by_allocation.get(getattr(x, "allocation_id", x.id))
            known = x.confirmed_by_decision or (allocation and allocation.confirmed_by_decision)
            return x.pledge_id == p.id and (known or p.decision_id) == d.id

        lines["pledge", p.id] = _funnel(
            w, applied, [a for a in w.allocations.values() if of_pledge(a)],
            [s for s in w.shipments.values() if of_pledge(s)], p.quantity,
        )  # fmt: skip
    return lines


commands = st.lists(
    st.tuples(
        st.one_of(st.just(ADVANCE), st.sampled_from(ACTIONS)),
        st.integers(0, LANES - 1),
        st.integers(1, 60),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.integers(1, 120),
    pledged=st.lists(st.integers(1, 50), min_size=1, max_size=LANES),
    steps=commands,
    picks=st.lists(st.integers(0, 10), max_size=200),
    sizes=st.lists(st.integers(1, 8), max_size=60),
)
def test_every_read_model_row_equals_the_write_sides_own(
    quantity: int,
    pledged: list[int],
    steps: list[tuple[str, int, int]],
    picks: list[int],
    sizes: list[int],
) -> None:
    world = World.start(quantity, pledged)
    for action, lane, amount in steps:
        world.do(action, lane, amount)
    stored, applied = _project(world.streams(), picks, sizes)

    assert {k: _as_row(r) for k, r in stored["shipments"].items()} == {
        s.id: _shipment_row(s, applied) for s in world.shipments.values()
    }
    assert {k: _as_row(r) for k, r in stored["allocations"].items()} == {
        a.id: _allocation_row(a, applied) for a in world.allocations.values()
    }
    assert {k: _as_row(r) for k, r in stored["pledges"].items()} == {
        p.id: _pledge_row(p, applied) for p in world.pledges
    }
    assert {k: _as_row(r) for k, r in stored["decisions"].items()} == {
        d.id: _decision_row(d, applied) for d in world.decisions
    }
    assert {k: _as_row(r) for k, r in stored["requirements"].items()} == {
        R: _requirement_row(world, applied)
    }
    # Each decision's execution view, as GET /decisions/{id}/execution computes it from the
    # rows, equals its lines recomputed from the write side.
    for d in world.decisions:
        # As the query loads them: the requirements and pledges the decision names.
        ours = [r for r in stored["requirements"].values() if r.decision_id == d.id]
        pledges = [p for p in stored["pledges"].values() if p.decision_id == d.id]
        allocations = list(stored["allocations"].values())
        shipments = list(stored["shipments"].values())
        shown = trace(stored["decisions"][d.id], ours, pledges, allocations, shipments)
        assert {
            (line["kind"], line["subject"]): {k: line[k] for k in FUNNEL} for line in shown["lines"]
        } == _execution(world, d, applied)
    assert {k: _as_row(r) for k, r in stored["items"].items()} == {
        "ART-NEW": {"item_code": "ART-NEW", "name": "New shell", "capability": "artillery",
                    "unit": "rounds"},
    }  # fmt: skip
