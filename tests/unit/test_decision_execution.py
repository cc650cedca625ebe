"""A forum decision followed to the border, from its events (pure): the projector's decision
and lineage rows, then `domain.execution.trace` over them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.projection.domain import Changes
from services.projection.domain.execution import shipment_stuck, stuck_reasons, trace
from services.projection.domain.history import History
from shared.contracts.allocations import AllocationApproved, AllocationProposed, ShortfallRecorded
from shared.contracts.deliveries import (
    ShipmentArrivedAtHub,
    ShipmentCancelled,
    ShipmentDelayed,
    ShipmentDispatched,
    ShipmentHandedOver,
    ShipmentInspected,
    ShipmentLost,
    ShipmentPlanned,
    ShipmentReceived,
)
from shared.contracts.requests import (
    DecisionRecorded,
    Endorsement,
    PledgeAnnounced,
    PledgeConfirmed,
    RequirementEndorsed,
    RequirementSubmitted,
)
from shared.domain import DomainEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ETA = date(2026, 4, 1)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def _submitted(rid: str, quantity: int) -> RequirementSubmitted:
    return RequirementSubmitted(
        requirement_id=rid, item_code="ART-155-HE", quantity=quantity, unit="rounds",
        priority=1, needed_by=date(2026, 12, 1), destination="Lviv", justification="-",
    )  # fmt: skip


def _proposed(aid: str, quantity: int, lineage: str | None) -> AllocationProposed:
    return AllocationProposed(
        allocation_id=aid, requirement_id="R-1", pledge_id="P-1", item_code="ART-155-HE",
        quantity=quantity, hub="PL-RZE", handover_by=date(2026, 12, 1), rationale="-",
        endorsed_by_decision=lineage, confirmed_by_decision=lineage,
    )  # fmt: skip


def _planned(sid: str, aid: str, quantity: int, lineage: str | None) -> ShipmentPlanned:
    return ShipmentPlanned(
        shipment_id=sid, allocation_id=aid, requirement_id="R-1", pledge_id="P-1", donor="de",
        item_code="ART-155-HE", quantity=quantity, hub="PL-RZE", handover_point="Korczowa",
        endorsed_by_decision=lineage, confirmed_by_decision=lineage,
    )  # fmt: skip


PLEDGE = PledgeAnnounced(
    pledge_id="P-1", donor="de", item_code="ART-155-HE", quantity=120, unit="rounds",
    source="stock", available_from=date(2026, 1, 1),
)  # fmt: skip
DECISION = DecisionRecorded(
    decision_id="D-1", meeting_date=date(2026, 2, 27), reference="UDCG-30",
    endorsed=[Endorsement(requirement_id="R-1", priority=1),
              Endorsement(requirement_id="R-2", priority=2)],
    confirmed=["P-1"],
)  # fmt: skip


def _followed() -> Changes[History]:
    """Decision D-1 endorses R-1 (100) and R-2 (50) and confirms P-1 (120). R-1 is covered by
    three allocations — A-1 and A-3 naming D-1, A-2 stored before lineage (unknown) — and one
    naming another decision (A-9, not D-1's). S-1 is handed over and received; S-2 (of A-2,
    lineage unknown) is held at inspection; S-3 is delayed and has lost 10; S-4 was cancelled.
    R-2 has no allocation: no pledge of its item."""
    events: list[tuple[DomainEvent, str, datetime]] = [
        (_submitted("R-1", 100), "R-1", day(-5)),
        (_submitted("R-2", 50), "R-2", day(-5)),
        (PLEDGE, "P-1", day(-4)),
        (RequirementEndorsed(priority=1, decision_id="D-1"), "R-1", T0),
        (RequirementEndorsed(priority=2, decision_id="D-1"), "R-2", T0),
        (PledgeConfirmed(decision_id="D-1"), "P-1", T0),
        (DECISION, "D-1", T0),
        (_proposed("A-1", 40, "D-1"), "A-1", day(1)),
        (_proposed("A-2", 30, None), "A-2", day(1.5)),
        (_proposed("A-3", 30, "D-1"), "A-3", day(2)),
        (_proposed("A-9", 5, "D-9"), "A-9", day(0.5)),
        *[(AllocationApproved(approved_by="p"), a, day(2)) for a in ("A-1", "A-2", "A-3", "A-9")],
        (
            ShortfallRecorded(requirement_id="R-2", open_quantity=50, reason="no pledge of it"),
            "shortfall-R-2",
            day(2),
        ),
        (_planned("S-1", "A-1", 40, "D-1"), "S-1", day(2)),
        (_planned("S-2", "A-2", 30, None), "S-2", day(2)),
        (_planned("S-3", "A-3", 30, "D-1"), "S-3", day(2)),
        (_planned("S-4", "A-3", 1, "D-1"), "S-4", day(2)),
        (_planned("S-9", "A-9", 5, "D-9"), "S-9", day(2)),
        *[(ShipmentDispatched(mode="road", carrier_ref="T"), s, day(3)) for s in ("S-1", "S-2")],
        (ShipmentDispatched(mode="rail", carrier_ref="T"), "S-3", day(3.5)),
        (ShipmentDispatched(mode="rail", carrier_ref="T"), "S-9", day(0.7)),
        *[(ShipmentArrivedAtHub(hub="PL-RZE"), s, day(4)) for s in ("S-1", "S-2")],
        (ShipmentInspected(result="held", notes="paperwork"), "S-2", day(4.5)),
        (ShipmentHandedOver(received_good=38, damaged=2, short=0), "S-1", day(6)),
        (ShipmentReceived(), "S-1", day(7)),
        (ShipmentDelayed(reason="rail strike", new_eta=ETA), "S-3", day(5)),
        (ShipmentLost(quantity=10, reason="derailment"), "S-3", day(5.5)),
        (ShipmentCancelled(reason="allocation cancelled"), "S-4", day(3)),
    ]
    changes = Changes({}, {}, {}, {})
    for event, subject, at in events:
        changes.apply(event, subject, at)
    return changes


def _trace(
    changes: Changes[History], reasons: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    return trace(
        changes.decisions["D-1"],
        [r for r in changes.requirements.values() if r.decision_id == "D-1"],
        [p for p in changes.pledges.values() if p.decision_id == "D-1"],
        list(changes.allocations.values()),
        list(changes.shipments.values()),
        reasons,
    )


def test_the_projector_keeps_the_decision_and_the_lineage() -> None:
    changes = _followed()
    d = changes.decisions["D-1"]
    assert (d.meeting_date, d.reference, d.endorsed, d.confirmed, d.recorded_at) == (
        date(2026, 2, 27), "UDCG-30", 2, 1, T0,
    )  # fmt: skip
    assert changes.requirements["R-1"].decision_id == "D-1"
    assert changes.pledges["P-1"].decision_id == "D-1"
    assert changes.requirements["R-2"].shortfall_reason == "no pledge of it"
    a1, a2 = changes.allocations["A-1"], changes.allocations["A-2"]
    assert (a1.endorsed_by_decision, a1.confirmed_by_decision) == ("D-1", "D-1")
    assert (a2.endorsed_by_decision, a2.confirmed_by_decision) == (None, None)
    assert changes.shipments["S-9"].endorsed_by_decision == "D-9"


def test_each_step_has_its_quantity_and_the_days_since_the_decision() -> None:
    answer = _trace(_followed())
    r1 = next(x for x in answer["lines"] if x["subject"] == "R-1")
    # A-9 and S-9 execute another decision: not counted; S-4 was cancelled: not moved.
    figures = {k: r1[k] for k in ("confirmed", "proposed", "allocated", "dispatched", "at_hub",
                                   "handed_over", "received", "lost")}  # fmt: skip
    assert figures == {
        "confirmed": 100, "proposed": 0, "allocated": 100, "dispatched": 100, "at_hub": 70,
        "handed_over": 38, "received": 38, "lost": 10,
    }  # fmt: skip
    days = {k: r1[f"days_to_{k}"] for k in ("allocated", "dispatched", "at_hub", "handed_over",
                                             "received")}  # fmt: skip
    assert days == {"allocated": 1.0, "dispatched": 3.0, "at_hub": 4.0, "handed_over": 6.0,
                    "received": 7.0}  # fmt: skip
    p1 = next(x for x in answer["lines"] if x["subject"] == "P-1")
    assert (p1["kind"], p1["confirmed"], p1["allocated"], p1["donor"]) == ("pledge", 120, 100, "DE")
    assert answer["requirements"]["confirmed"] == 150
    assert answer["requirements"]["share_handed_over"] == round(38 / 150, 4)
    assert answer["pledges"]["allocated"] == 100
    assert (answer["requirements_endorsed"], answer["pledges_confirmed"]) == (2, 1)


def test_what_is_stuck_and_why() -> None:
    reasons = {"S-2": {"inspection_notes": "paperwork"},
               "S-3": {"delay_reason": "rail strike", "loss_reason": "derailment"}}  # fmt: skip
    answer = _trace(_followed(), reasons)
    lines = {x["subject"]: x for x in answer["lines"]}
    assert lines["R-1"]["stuck"] == ["held", "delayed", "lost"]
    assert lines["R-2"]["stuck"] == ["no_allocation"]
    assert lines["R-2"]["shortfall_reason"] == "no pledge of it"
    assert lines["R-2"]["open_shortfall"] == 50
    assert answer["stuck"] == {
        "no_allocation": {"requirements": 1, "pledges": 0, "quantity": 50},
        "shortfall": {"requirements": 0, "quantity": 0},
        "held": {"shipments": 1, "quantity": 30},
        "delayed": {"shipments": 1, "quantity": 20},
        "lost": {"shipments": 1, "quantity": 10},
    }
    shipments = {s["shipment_id"]: s for s in answer["shipments"]}
    assert sorted(shipments) == ["S-1", "S-2", "S-3"]  # not S-4 (cancelled), not S-9 (D-9's)
    assert shipments["S-2"]["held"] and shipments["S-2"]["inspection_notes"] == "paperwork"
    s3 = shipments["S-3"]
    assert (s3["delayed"], s3["new_eta"], s3["delay_reason"]) == (True, ETA, "rail strike")
    assert (s3["lost_quantity"], s3["loss_reason"]) == (10, "derailment")
    s1 = shipments["S-1"]
    assert not s1["held"] and not s1["delayed"] and s1["loss_reason"] is None


def test_a_partly_allocated_requirement_is_short() -> None:
    changes = _followed()
    changes.apply(
        ShortfallRecorded(requirement_id="R-1", open_quantity=20, reason="pledge reduced"),
        "shortfall-R-1",
        day(8),
    )
    r1 = next(x for x in _trace(changes)["lines"] if x["subject"] == "R-1")
    assert r1["stuck"][0] == "shortfall" and r1["shortfall_reason"] == "pledge reduced"


def test_a_delay_no_longer_holds_up_a_shipment_handed_over() -> None:
    changes = _followed()
    s3 = changes.shipments["S-3"]
    assert shipment_stuck(s3) == ["delayed", "lost"]
    changes.apply(ShipmentHandedOver(received_good=20, damaged=0, short=0), "S-3", day(9))
    assert shipment_stuck(s3) == ["lost"]


def test_the_latest_reasons_count_and_a_passed_inspection_says_nothing() -> None:
    events = [
        ("S-1", "shipment.inspected", {"result": "held", "notes": "seal broken"}),
        ("S-1", "shipment.delayed", {"reason": "fog", "new_eta": "2026-04-01"}),
        ("S-1", "shipment.delayed", {"reason": "strike", "new_eta": "2026-04-09"}),
        ("S-2", "shipment.inspected", {"result": "passed", "notes": "fine"}),
        ("S-2", "shipment.dispatched", {"mode": "road"}),
    ]
    assert stuck_reasons(events) == {
        "S-1": {"inspection_notes": "seal broken", "delay_reason": "strike"}
    }
