"""The projection's pure rules: board statuses, batches applied out of order, event scopes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.projection.domain import Changes, keys_of, requirement_status
from services.projection.domain.model import STATUSES
from services.projection.domain.projector import Scope
from shared.contracts.allocations import AllocationApproved, AllocationCancelled, AllocationProposed
from shared.contracts.deliveries import (
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentDispatched,
    ShipmentEumDiscrepancy,
    ShipmentHandedOver,
    ShipmentPlanned,
)
from shared.contracts.requests import RequirementCancelled, RequirementSubmitted

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
