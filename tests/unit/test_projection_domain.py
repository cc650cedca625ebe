"""The projection's pure rules: board statuses, batches applied out of order, event scopes."""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from services.projection.domain import Changes, keys_of, requirement_status
from services.projection.domain.model import STATUSES, Shipment
from services.projection.domain.projector import IGNORED, Scope
from shared.contracts import REGISTRIES
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationCancelled,
    AllocationProposed,
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
    RequirementCancelled,
    RequirementDeliveryRecorded,
    RequirementFulfilled,
    RequirementSubmitted,
)
from shared.domain import DomainEvent

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ({}, "submitted"),
        ({"endorsed": True}, "endorsed"),
        ({"endorsed": True, "allocated": 40}, "partially_covered"),
        ({"allocated": 100}, "covered"),
        ({"allocated": 100, "in_transit": 100}, "in_transit"),
        ({"allocated": 100, "in_transit": 60, "delivered": 40}, "partially_delivered"),
        ({"allocated": 100, "delivered": 100}, "delivered"),
        ({"delivered": 100, "fulfilled": True}, "fulfilled"),
        ({"allocated": 100, "cancelled": True}, "cancelled"),
    ],
)
def test_status_is_the_furthest_step_reached(figures: dict[str, object], expected: str) -> None:
    args = {"requested": 100, "allocated": 0, "in_transit": 0, "delivered": 0,
            "endorsed": False, "cancelled": False, "fulfilled": False} | figures  # fmt: skip
    assert requirement_status(**args) == expected  # type: ignore[arg-type]
    assert expected in STATUSES


def _submitted(rid: str = "R-1", quantity: int = 100) -> RequirementSubmitted:
    return RequirementSubmitted(
        requirement_id=rid, item_code="ART-155-HE", quantity=quantity, unit="rounds",
        priority=1, needed_by=date(2026, 12, 1), destination="Lviv", justification="-",
    )  # fmt: skip


def _proposed(aid: str, quantity: int) -> AllocationProposed:
    return AllocationProposed(
        allocation_id=aid, requirement_id="R-1", pledge_id="P-1", item_code="ART-155-HE",
        quantity=quantity, hub="PL-RZE", handover_by=date(2026, 12, 1), rationale="-",
    )  # fmt: skip


def test_allocations_before_their_requirement_still_count() -> None:
    events = [
        (_proposed("A-1", 60), "A-1"),
        (AllocationApproved(approved_by="p"), "A-1"),
        (_proposed("A-2", 50), "A-2"),
        (_submitted(), "R-1"),
    ]
    keys = keys_of(events)
    assert keys.requirements == {"R-1"} and keys.allocations == {"A-1", "A-2"}
    changes = Changes({}, {}, {}, {})
    for event, subject in events:
        changes.apply(event, subject, NOW)
    [r] = changes.dirty(type(changes.requirements["R-1"]))
    assert (r.requested, r.pledged, r.allocated, r.status) == (100, 110, 60, "partially_covered")
    changes.apply(AllocationCancelled(reason="pledge withdrawn"), "A-1", NOW)
    assert (r.pledged, r.allocated, r.status) == (50, 0, "submitted")


def test_a_batch_of_changes_is_freed_when_dropped_not_left_to_the_garbage_collector() -> None:
    # A batch's Changes holds every row it loaded: as a reference cycle (its handlers bound to
    # it) it outlived its batch until a collection, and a replay's memory grew with it.
    changes = Changes({}, {}, {}, {})
    for event, subject in [
        (_submitted(), "R-1"),
        (_proposed("A-1", 60), "A-1"),
        (AllocationApproved(approved_by="p"), "A-1"),
    ]:
        changes.apply(event, subject, NOW)
    dropped = weakref.ref(changes)
    gc.disable()
    try:
        del changes
        assert dropped() is None
    finally:
        gc.enable()


def test_shipments_move_quantities_from_transit_to_delivered() -> None:
    changes = Changes({}, {}, {}, {})
    changes.apply(_submitted(quantity=10), "R-1", NOW)
    planned = ShipmentPlanned(
        shipment_id="S-1", allocation_id="A-1", requirement_id="R-1", pledge_id="P-1",
        donor="de", item_code="ART-155-HE", quantity=10, hub="PL-RZE", handover_point="K",
    )  # fmt: skip
    scope = changes.apply(planned, "S-1", NOW)
    assert scope is not None and (scope.hub, scope.donor) == ("PL-RZE", "DE")
    r = changes.requirements["R-1"]
    assert (r.in_transit, r.status) == (0, "submitted")
    changes.apply(ShipmentDispatched(mode="road", carrier_ref="T-1"), "S-1", NOW)
    assert (r.in_transit, r.status) == (10, "in_transit")
    changes.apply(ShipmentHandedOver(received_good=8, damaged=2, short=0), "S-1", NOW)
    assert (r.in_transit, r.delivered, r.status) == (0, 8, "partially_delivered")
    changes.apply(RequirementCancelled(reason="-"), "R-1", NOW)
    assert r.status == "cancelled"


def test_the_request_services_delivery_record_is_not_counted_twice() -> None:
    changes = Changes({}, {}, {}, {})
    changes.apply(_submitted(quantity=10), "R-1", NOW)
    r = changes.requirements["R-1"]
    r.delivered_shipments = 10
    r.delivered_recorded = 10
    assert r.delivered == 10


def test_deliveries_recorded_add_up_and_fulfilment_ends_the_requirement() -> None:
    changes = Changes({}, {}, {}, {})
    changes.apply(_submitted(quantity=10), "R-1", NOW)
    changes.apply(RequirementDeliveryRecorded(shipment_id="S-1", quantity=4), "R-1", NOW)
    changes.apply(RequirementDeliveryRecorded(shipment_id="S-2", quantity=6), "R-1", NOW)
    r = changes.requirements["R-1"]
    assert (r.delivered_recorded, r.status) == (10, "delivered")
    changes.apply(RequirementFulfilled(), "R-1", NOW)
    assert (r.fulfilled, r.status) == (True, "fulfilled")


@pytest.mark.parametrize(
    ("figure", "status"),
    [("allocated", "partially_covered"), ("in_transit", "in_transit"),
     ("delivered", "partially_delivered")],
)  # fmt: skip
def test_one_unit_is_enough_to_reach_a_step(figure: str, status: str) -> None:
    args = {"requested": 100, "allocated": 0, "in_transit": 0, "delivered": 0,
            "endorsed": True, "cancelled": False, "fulfilled": False} | {figure: 1}  # fmt: skip
    assert requirement_status(**args) == status  # type: ignore[arg-type]


def test_an_event_the_projector_has_no_handler_for_changes_nothing() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Unknown(DomainEvent):
        TYPE = "shipment.teleported"

    changes = Changes({}, {}, {}, {})
    assert changes.apply(Unknown(), "SHP-1", NOW) is None
    assert changes.dirty(Shipment) == []


def test_a_shipment_event_of_a_shipment_never_planned_here_has_no_scope() -> None:
    """(a projection started at the topics' ends sees a shipment's later events only)"""
    changes = Changes({}, {}, {}, {})
    refused = ShipmentCancellationRefused(reason="-", status="dispatched", refusal="-")
    assert changes.apply(refused, "SHP-X", NOW) == Scope()


def test_every_shipment_event_says_whose_shipment_it_is() -> None:
    """Events that change no table still carry the shipment's scope (for the audit's rule)."""
    changes = Changes({}, {}, {}, {})
    planned = ShipmentPlanned(
        shipment_id="S-1", allocation_id="A-1", requirement_id="R-1", pledge_id="P-1",
        donor="de", item_code="ART-155-HE", quantity=10, hub="PL-RZE", handover_point="K",
    )  # fmt: skip
    changes.apply(planned, "S-1", NOW)
    for event in (
        ShipmentEumDiscrepancy(missing=["S2"], unexpected=[]),
        ShipmentCancellationRefused(reason="r", status="dispatched", refusal="gone"),
        ShipmentCancelled(reason="r"),
    ):
        assert changes.apply(event, "S-1", NOW) == Scope(hub="PL-RZE", donor="DE")
    assert changes.apply(ShipmentCancelled(reason="r"), "S-unknown", NOW) == Scope()


def _planned(quantity: int = 10) -> ShipmentPlanned:
    return ShipmentPlanned(
        shipment_id="S-1", allocation_id="A-1", requirement_id="R-1", pledge_id="P-1",
        donor="de", item_code="ART-155-HE", quantity=quantity, hub="PL-RZE", handover_point="K",
    )  # fmt: skip


@pytest.mark.parametrize("registry", list(REGISTRIES.values()), ids=list(REGISTRIES))
def test_every_event_type_is_handled_or_ignored_with_a_reason(registry: object) -> None:
    changes = Changes({}, {}, {}, {})
    forgotten = [
        name
        for name, kind in registry.types.items()  # type: ignore[attr-defined]
        if not changes.handles(kind) and kind not in IGNORED
    ]
    assert forgotten == [], "add a handler to Changes, or name it in IGNORED with why"
    assert all(reason.strip() for reason in IGNORED.values())


def test_the_recipients_receipt_ends_the_shipment_as_received() -> None:
    changes = Changes({}, {}, {}, {})
    changes.apply(_submitted(quantity=10), "R-1", NOW)
    changes.apply(_planned(), "S-1", NOW)
    changes.apply(ShipmentDispatched(mode="road", carrier_ref="T-1"), "S-1", NOW)
    changes.apply(ShipmentHandedOver(received_good=10, damaged=0, short=0), "S-1", NOW)
    changes.apply(ShipmentReceived(), "S-1", NOW)
    s, r = changes.shipments["S-1"], changes.requirements["R-1"]
    assert (s.status, s.received_at, r.delivered, r.in_transit) == ("received", NOW, 10, 0)


def test_partial_losses_add_up_and_the_shipment_moves_on_until_nothing_remains() -> None:
    """As the delivery service decides: a loss of part leaves the rest in transit."""
    changes = Changes({}, {}, {}, {})
    changes.apply(_submitted(quantity=10), "R-1", NOW)
    changes.apply(_planned(), "S-1", NOW)
    changes.apply(ShipmentDispatched(mode="road", carrier_ref="T-1"), "S-1", NOW)
    s, r = changes.shipments["S-1"], changes.requirements["R-1"]
    changes.apply(ShipmentLost(quantity=3, reason="crate broken"), "S-1", NOW)
    assert (s.status, s.lost_quantity, r.in_transit) == ("dispatched", 3, 7)
    changes.apply(ShipmentLost(quantity=2, reason="pallet stolen"), "S-1", NOW)
    assert (s.status, s.lost_quantity, r.in_transit) == ("dispatched", 5, 5)
    changes.apply(ShipmentLost(quantity=5, reason="truck burnt"), "S-1", NOW)
    assert (s.status, s.lost_quantity, r.in_transit) == ("lost", 10, 0)


def test_a_cancelled_shipment_is_no_longer_planned() -> None:
    """It must not count in a hub's inbound figures (which count planned shipments)."""
    changes = Changes({}, {}, {}, {})
    changes.apply(_planned(), "S-1", NOW)
    changes.apply(ShipmentCancelled(reason="allocation cancelled"), "S-1", NOW)
    assert changes.shipments["S-1"].status == "cancelled"
    assert [s.status for s in changes.dirty(type(changes.shipments["S-1"]))] == ["cancelled"]


def test_every_event_dates_the_rows_it_changes_and_shipments_keep_their_lineage() -> None:
    """`updated_at` is the time of the last event that changed a row (the board sorts and
    filters by it), whichever topic it came from."""
    changes = Changes({}, {}, {}, {})
    times = iter(NOW + timedelta(minutes=n) for n in range(100))
    planned = ShipmentPlanned(
        shipment_id="S-1", allocation_id="A-1", requirement_id="R-1", pledge_id="P-1",
        donor="de", item_code="ART-155-HE", quantity=10, hub="PL-RZE", handover_point="K",
        endorsed_by_decision="D-1", confirmed_by_decision="D-2",
    )  # fmt: skip
    steps: list[tuple[DomainEvent, str, bool]] = [  # event, subject, changes the requirement
        (_submitted(quantity=10), "R-1", True),
        (_proposed("A-1", 10), "A-1", True),
        (AllocationApproved(approved_by="p"), "A-1", True),
        (planned, "S-1", False),
        (ShipmentDispatched(mode="road", carrier_ref="T-1"), "S-1", True),
        (ShipmentDelayed(reason="-", new_eta=date(2026, 12, 9)), "S-1", False),
        (ShipmentLost(quantity=2, reason="-"), "S-1", True),
        (ShipmentArrivedAtHub(hub="PL-RZE"), "S-1", False),
        (ShipmentInspected(result="passed"), "S-1", False),
        (ShipmentDepartedHub(), "S-1", False),
        (ShipmentHandedOver(received_good=8, damaged=0, short=0), "S-1", True),
        (ShipmentReceived(), "S-1", False),
        (RequirementDeliveryRecorded(shipment_id="S-1", quantity=8), "R-1", True),
        (ShortfallRecorded(requirement_id="R-1", open_quantity=2, reason="-"), "x", True),
        (RequirementFulfilled(), "R-1", True),
    ]
    for event, subject, changes_requirement in steps:
        at = next(times)
        changes.apply(event, subject, at)
        if subject.startswith("S-"):
            assert changes.shipments["S-1"].updated_at == at, event.TYPE
        assert (changes.requirements["R-1"].updated_at == at) == changes_requirement, event.TYPE
    s = changes.shipments["S-1"]
    assert (s.endorsed_by_decision, s.confirmed_by_decision) == ("D-1", "D-2")
