"""Lineage in the events (issue 17 item 1): the forum decisions behind a requirement and a pledge
reach their allocations and shipments; stored v1 events read as "not known" (pure, no I/O)."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.allocation.domain import Allocation
from services.delivery.domain import Shipment
from shared.contracts.allocations import AllocationProposed
from shared.contracts.allocations import registry as allocation_events
from shared.contracts.deliveries import ShipmentPlanned
from shared.contracts.deliveries import registry as delivery_events
from shared.domain import Metadata
from tests.unit.allocation_support import approved, need, offer, planner, state


def test_a_proposal_carries_the_decisions_of_its_requirement_and_pledge() -> None:
    needs = [need("R-1", 50, decision_id="DEC-1")]
    plan = planner().plan(state(needs, [offer("P-1", 50, decision_id="DEC-2")]), "test")
    (proposal,) = plan.proposals
    assert (proposal.endorsed_by_decision, proposal.confirmed_by_decision) == ("DEC-1", "DEC-2")


def test_a_replacement_carries_the_lineage_too() -> None:
    placed = [approved("A-1", "R-1", "P-1", 50)]
    needs = [need("R-1", 50, decision_id="DEC-1")]
    offers = [offer("P-1", 30, decision_id="DEC-2")]
    (replacement,) = planner().plan(state(needs, offers, placed), "pledge P-1 reduced").proposals
    assert replacement.replaces == "A-1"
    assert (replacement.endorsed_by_decision, replacement.confirmed_by_decision) == (
        "DEC-1",
        "DEC-2",
    )


def test_state_learnt_without_its_decision_proposes_an_unknown_lineage() -> None:
    (proposal,) = planner().plan(state([need("R-1", 5)], [offer("P-1", 5)]), "test").proposals
    assert (proposal.endorsed_by_decision, proposal.confirmed_by_decision) == (None, None)


def test_the_allocation_records_and_keeps_its_lineage() -> None:
    needs = [need("R-1", 50, decision_id="DEC-1")]
    plan = planner().plan(state(needs, [offer("P-1", 50, decision_id="DEC-2")]), "test")
    allocation = Allocation.propose("AL-1", plan.proposals[0])
    (event,) = allocation.pending
    assert isinstance(event, AllocationProposed)
    assert (event.endorsed_by_decision, event.confirmed_by_decision) == ("DEC-1", "DEC-2")
    again = Allocation.rehydrate("AL-1", allocation.pending)
    assert (again.endorsed_by_decision, again.confirmed_by_decision) == ("DEC-1", "DEC-2")


def test_a_shipment_records_its_allocations_lineage() -> None:
    shipment = Shipment.plan(
        "SHP-AL-1", allocation_id="AL-1", requirement_id="R-1", pledge_id="P-1", donor="DE",
        item_code="ART-155-HE", quantity=10, hub="PL-RZE", handover_point="Korczowa-Krakovets",
        eum_class="none", endorsed_by_decision="DEC-1", confirmed_by_decision="DEC-2",
    )  # fmt: skip
    (event,) = shipment.pending
    assert isinstance(event, ShipmentPlanned)
    assert (event.endorsed_by_decision, event.confirmed_by_decision) == ("DEC-1", "DEC-2")
    again = Shipment.rehydrate("SHP-AL-1", shipment.pending)
    assert (again.endorsed_by_decision, again.confirmed_by_decision) == ("DEC-1", "DEC-2")


PROPOSED_V1: dict[str, Any] = {
    "allocation_id": "AL-1", "requirement_id": "R-1", "pledge_id": "P-1",
    "item_code": "ART-155-HE", "quantity": 10, "hub": "PL-RZE", "handover_by": "2025-03-01",
    "rationale": "stored before lineage",
}  # fmt: skip
PLANNED_V1 = {
    "shipment_id": "SHP-AL-1", "allocation_id": "AL-1", "requirement_id": "R-1",
    "pledge_id": "P-1", "donor": "DE", "item_code": "ART-155-HE", "quantity": 10,
    "hub": "PL-RZE", "handover_point": "Korczowa-Krakovets", "eum_class": "none",
}  # fmt: skip


def test_a_stored_v1_proposal_reads_with_its_lineage_unknown() -> None:
    event = allocation_events.decode("allocation.proposed", 1, PROPOSED_V1)
    assert event == AllocationProposed(
        **{**PROPOSED_V1, "handover_by": date(2025, 3, 1)},
        endorsed_by_decision=None,
        confirmed_by_decision=None,
    )


def test_a_stored_v1_shipment_reads_with_its_lineage_unknown() -> None:
    event = delivery_events.decode("shipment.planned", 1, PLANNED_V1)
    assert isinstance(event, ShipmentPlanned)
    assert (event.shipment_id, event.endorsed_by_decision, event.confirmed_by_decision) == (
        "SHP-AL-1",
        None,
        None,
    )


def test_the_lineage_is_written_as_version_2() -> None:
    proposed = allocation_events.decode("allocation.proposed", 1, PROPOSED_V1)
    planned = delivery_events.decode("shipment.planned", 1, PLANNED_V1)
    for registry, event in ((allocation_events, proposed), (delivery_events, planned)):
        new = registry.encode(event, Metadata())
        assert new.schema_version == 2
        assert new.data["endorsed_by_decision"] is None
        assert "confirmed_by_decision" in new.data
