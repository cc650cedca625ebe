"""The requirement aggregate: its life and the rules that refuse commands (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from services.request.domain import Requirement, RequirementStatus
from shared.catalogue import base_items
from shared.contracts.requests import (
    RequirementAmended,
    RequirementCancelled,
    RequirementDeliveryRecorded,
    RequirementEndorsed,
    RequirementFulfilled,
    RequirementSubmitted,
    registry,
)
from shared.domain import DomainError, Metadata

SHELLS = base_items()["ART-155-HE"]


def submitted(quantity: int = 100, priority: int = 2) -> Requirement:
    requirement = Requirement.submit(
        "REQ-1",
        item=SHELLS,
        quantity=quantity,
        priority=priority,
        needed_by=date(2030, 1, 1),
        destination="Dnipro",
        justification="counter-battery fire",
    )
    requirement.pending = []  # as if saved
    return requirement


def test_submit_records_the_need_with_the_items_unit() -> None:
    requirement = Requirement.submit(
        "REQ-1",
        item=SHELLS,
        quantity=100,
        priority=1,
        needed_by=date(2030, 1, 1),
        destination="Dnipro",
        justification="why",
    )
    [event] = requirement.pending
    assert isinstance(event, RequirementSubmitted)
    assert (event.item_code, event.unit, event.quantity) == ("ART-155-HE", "rounds", 100)
    assert requirement.version == 1 and requirement.status is RequirementStatus.SUBMITTED


@pytest.mark.parametrize(
    ("quantity", "priority"), [(0, 1), (-5, 1), (10_000_001, 1), (5, 0), (5, 5)]
)
def test_submit_refuses_quantities_and_priorities_out_of_bounds(
    quantity: int, priority: int
) -> None:
    with pytest.raises(DomainError):
        submitted(quantity, priority)


def test_endorse_may_rerank_and_carries_the_decision() -> None:
    requirement = submitted(priority=3)
    requirement.endorse("DEC-1", priority=1)
    assert requirement.pending == [RequirementEndorsed(priority=1, decision_id="DEC-1")]
    assert requirement.status is RequirementStatus.ENDORSED
    keep = submitted(priority=3)
    keep.endorse("DEC-2")
    assert keep.priority == 3


def test_no_endorsing_twice_or_a_cancelled_requirement() -> None:
    requirement = submitted()
    requirement.endorse("DEC-1")
    with pytest.raises(DomainError, match="already endorsed by decision DEC-1"):
        requirement.endorse("DEC-2")
    cancelled = submitted()
    cancelled.cancel("covered nationally")
    with pytest.raises(
        DomainError, match=r"cancelled \(covered nationally\); it cannot be endorsed"
    ):
        cancelled.endorse("DEC-1")


def test_amend_records_only_what_changes() -> None:
    requirement = submitted(quantity=100, priority=2)
    requirement.amend(quantity=150, priority=2)
    assert requirement.pending == [RequirementAmended(quantity=150)]
    with pytest.raises(DomainError, match="changes nothing"):
        requirement.amend(quantity=150)


def test_deliveries_are_recorded_once_per_shipment_and_fulfil_the_need() -> None:
    requirement = submitted(quantity=100)
    requirement.endorse("DEC-1")
    assert requirement.record_delivery("SHP-1", 60)
    assert not requirement.record_delivery("SHP-1", 60)  # the same shipment again
    assert (requirement.delivered, requirement.status) == (60, RequirementStatus.ENDORSED)
    assert requirement.record_delivery("SHP-2", 40)
    assert (requirement.delivered, requirement.status) == (100, RequirementStatus.FULFILLED)
    types = [type(e) for e in requirement.pending]
    assert types == [
        RequirementEndorsed,
        RequirementDeliveryRecorded,
        RequirementDeliveryRecorded,
        RequirementFulfilled,
    ]
    # More may arrive later: recorded, but fulfilled only once.
    assert requirement.record_delivery("SHP-3", 5)
    assert requirement.pending.count(RequirementFulfilled()) == 1


def test_no_cancelling_or_amending_a_fulfilled_requirement() -> None:
    requirement = submitted(quantity=10)
    requirement.record_delivery("SHP-1", 10)
    with pytest.raises(DomainError, match="already fulfilled; it cannot be cancelled"):
        requirement.cancel("no longer needed")
    with pytest.raises(DomainError, match="fulfilled"):
        requirement.amend(priority=1)


def test_amend_cannot_go_below_what_was_delivered_and_fulfils_when_met() -> None:
    requirement = submitted(quantity=100)
    requirement.record_delivery("SHP-1", 70)
    with pytest.raises(DomainError, match="70 have already been delivered"):
        requirement.amend(quantity=69)
    requirement.amend(quantity=70)
    assert requirement.status is RequirementStatus.FULFILLED


def test_a_cancelled_requirement_still_records_deliveries_but_is_not_fulfilled() -> None:
    requirement = submitted(quantity=10)
    requirement.cancel("changed plans")
    assert requirement.record_delivery("SHP-1", 10)
    assert requirement.status is RequirementStatus.CANCELLED
    with pytest.raises(DomainError):
        requirement.cancel("again")


def test_rehydrating_from_the_stored_events_gives_the_same_state() -> None:
    requirement = submitted(quantity=100)
    requirement.endorse("DEC-1", priority=1)
    requirement.amend(needed_by=date(2031, 1, 1))
    requirement.record_delivery("SHP-1", 30)
    requirement.cancel("enough")
    history = [requirement_submitted(), *requirement.pending]
    encoded = [registry.encode(e, Metadata(actor="tester")) for e in history]
    again = Requirement.rehydrate(
        "REQ-1", [registry.decode(n.event_type, 1, n.data) for n in encoded]
    )
    assert vars(again) | {"pending": []} == vars(requirement) | {"pending": []}


def requirement_submitted() -> RequirementSubmitted:
    return RequirementSubmitted(
        requirement_id="REQ-1",
        item_code="ART-155-HE",
        quantity=100,
        unit="rounds",
        priority=2,
        needed_by=date(2030, 1, 1),
        destination="Dnipro",
        justification="counter-battery fire",
    )


def test_cancelled_event_carries_the_reason() -> None:
    requirement = submitted()
    requirement.cancel("covered by a national contract")
    assert requirement.pending == [RequirementCancelled(reason="covered by a national contract")]
