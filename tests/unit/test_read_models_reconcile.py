"""The read models reconcile with the write side: random valid command sequences run through
the write services' own domain (a requirement, its allocations, their shipments), their events
are applied by the projector in any order the topics may deliver them (each stream in order,
streams interleaved), and every figure of the board's rows equals what is recomputed from the
write side's own state.

Pure and fast, so `make mutation` runs it against every mutant of the projector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocation.domain import Allocation, Proposal
from services.delivery.domain.shipment import Shipment, Status
from services.projection.domain import Changes, requirement_status
from services.projection.domain.model import Requirement as RequirementRow
from services.request.domain.requirement import Requirement, RequirementStatus
from shared.catalogue import base_items
from shared.domain import DomainError, DomainEvent

ITEM = base_items()["ART-155-HE"]
TODAY = date(2026, 12, 3)
R = "REQ-1"
LANES = 3  # allocations, each with the shipment it becomes

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
MOVING = {
    Status.DISPATCHED,
    Status.ARRIVED_AT_HUB,
    Status.HELD,
    Status.INSPECTED,
    Status.DEPARTED_HUB,
}

ACTIONS = (
    "endorse", "amend", "cancel requirement",
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
    allocations: list[Allocation]
    shipments: dict[int, Shipment] = field(default_factory=dict)
    streams: dict[str, list[DomainEvent]] = field(default_factory=dict)

    @classmethod
    def start(cls, quantity: int, lanes: list[int]) -> World:
        requirement = Requirement.submit(
            R, item=ITEM, quantity=quantity, priority=2, needed_by=TODAY + timedelta(days=90),
            destination="Lviv", justification="-",
        )  # fmt: skip
        allocations = [
            Allocation.propose(
                f"AL-{i}",
                Proposal(
                    requirement_id=R,
                    pledge_id=f"PLG-{i}",
                    item_code=ITEM.code,
                    quantity=q,
                    hub="RO-SUC",
                    handover_by=TODAY + timedelta(days=60),
                    rationale="-",
                ),
            )
            for i, q in enumerate(lanes)
        ]
        return cls(requirement, allocations)

    def do(self, action: str, lane: int, amount: int) -> None:
        """One command, as its service would run it; a command the domain refuses changes
        nothing (the user gets a 409)."""
        allocation = self.allocations[lane % len(self.allocations)]
        shipment = self.shipments.get(lane % len(self.allocations))
        if action == ADVANCE:
            action = "approve" if shipment is None else NEXT.get(shipment.status, "")
        try:
            match action:
                case "endorse":
                    self.requirement.endorse("DEC-1")
                case "amend":
                    self.requirement.amend(quantity=amount)
                case "cancel requirement":
                    self.requirement.cancel("no longer needed")
                case "approve":
                    allocation.approve("planner")
                    self._plan(lane % len(self.allocations), allocation)
                case "reject":
                    allocation.reject("not this pledge")
                case "cancel allocation":
                    allocation.cancel("pledge withdrawn")
                    if shipment is not None:  # the delivery service's answer
                        shipment.respond_to_cancellation("pledge withdrawn")
                case _ if shipment is not None:
                    self._move(shipment, action, amount)
        except DomainError:
            pass

    def _plan(self, lane: int, allocation: Allocation) -> None:
        self.shipments[lane] = Shipment.plan(
            f"SHP-{lane}", allocation_id=allocation.id, requirement_id=R,
            pledge_id=allocation.pledge_id, donor="PL", item_code=ITEM.code,
            quantity=allocation.quantity, hub=allocation.hub, handover_point="Siret",
            eum_class="none",
        )  # fmt: skip

    def _move(self, shipment: Shipment, action: str, amount: int) -> None:
        match action:
            case "dispatch":
                shipment.dispatch("road", "CR-1", ())
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

    def events(self) -> dict[str, list[DomainEvent]]:
        """Every stream's events, in its order."""
        aggregates = [self.requirement, *self.allocations, *self.shipments.values()]
        return {a.id: list(a.pending) for a in aggregates}


def _interleave(
    streams: dict[str, list[DomainEvent]], picks: list[int]
) -> list[tuple[str, DomainEvent]]:
    """The events as the projection may read them: each stream in order (one partition), the
    streams interleaved as `picks` says (partitions read in parallel)."""
    queues = {sid: list(events) for sid, events in streams.items() if events}
    out: list[tuple[str, DomainEvent]] = []
    picks = iter(picks)
    while queues:
        sid = sorted(queues)[next(picks, 0) % len(queues)]
        out.append((sid, queues[sid].pop(0)))
        if not queues[sid]:
            del queues[sid]
    return out


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
    lanes=st.lists(st.integers(1, 50), min_size=1, max_size=LANES),
    steps=commands,
    picks=st.lists(st.integers(0, 10), max_size=200),
)
def test_every_board_figure_equals_the_write_sides_own(
    quantity: int, lanes: list[int], steps: list[tuple[str, int, int]], picks: list[int]
) -> None:
    world = World.start(quantity, lanes)
    for action, lane, amount in steps:
        world.do(action, lane, amount)

    changes = Changes({}, {}, {}, {})
    at = datetime(2026, 12, 3, tzinfo=UTC)
    for n, (subject, event) in enumerate(_interleave(world.events(), picks)):
        changes.apply(event, subject, at + timedelta(seconds=n))

    # Each shipment's row is the delivery service's shipment.
    for shipment in world.shipments.values():
        row = changes.shipments[shipment.id]
        assert row.status == BOARD_STATUS[shipment.status]
        assert (row.quantity, row.lost_quantity) == (shipment.quantity, shipment.lost)
        assert row.received_good == shipment.received_good
        assert row.eta == shipment.eta
    assert set(changes.shipments) == {s.id for s in world.shipments.values()}

    # Each allocation's row is the allocation service's allocation.
    for allocation in world.allocations:
        row_a = changes.allocations[allocation.id]
        assert (row_a.status, row_a.quantity) == (allocation.status, allocation.quantity)

    # The requirement's figures, recomputed from the three services' own state.
    req = world.requirement
    shipped = world.shipments.values()
    handed = {Status.HANDED_OVER, Status.RECEIVED}
    figures = {
        "requested": req.quantity,
        "pledged": sum(a.quantity for a in world.allocations if a.live),
        "allocated": sum(a.quantity for a in world.allocations if a.status == "approved"),
        "in_transit": sum(s.remaining for s in shipped if s.status in MOVING),
        "delivered": max(
            sum(s.received_good for s in shipped if s.status in handed), req.delivered
        ),
    }
    row_r: RequirementRow = changes.requirements[R]
    assert {k: getattr(row_r, k) for k in figures} == figures
    flags = {
        "endorsed": req.decision_id is not None,
        "cancelled": req.status is RequirementStatus.CANCELLED,
        "fulfilled": req.status is RequirementStatus.FULFILLED,
    }
    assert {k: getattr(row_r, k) for k in flags} == flags
    del figures["pledged"]  # shown, but no step of the status
    assert row_r.status == requirement_status(**figures, **flags)
