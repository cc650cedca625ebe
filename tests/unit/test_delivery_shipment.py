"""The Shipment state machine, its quantity rules and end-use monitoring (pure)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.delivery.domain import Shipment, Status
from shared.contracts.deliveries import (
    EumClass,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentEumDiscrepancy,
    ShipmentHandedOver,
)
from shared.domain import DomainError

TODAY = date(2026, 11, 25)


def planned(quantity: int = 10, eum_class: EumClass = "none") -> Shipment:
    shipment = Shipment.plan(
        "SHP-1",
        allocation_id="A-1",
        requirement_id="R-1",
        pledge_id="P-1",
        donor="DE",
        item_code="ART-155-HE",
        quantity=quantity,
        hub="PL-RZE",
        handover_point="Korczowa-Krakovets",
        eum_class=eum_class,
    )
    shipment.pending = []
    return shipment


def serials(n: int, start: int = 1) -> list[str]:
    return [f"SN-{i}" for i in range(start, start + n)]


def departed(quantity: int = 10, eum_class: EumClass = "none") -> Shipment:
    shipment = planned(quantity, eum_class)
    shipment.dispatch("road", "DHL-1", serials(quantity) if eum_class == "enhanced" else [])
    shipment.arrive()
    shipment.inspect("passed")
    shipment.depart()
    return shipment


def test_the_whole_way_from_plan_to_receipt() -> None:
    shipment = departed()
    shipment.hand_over(received_good=8, damaged=1, short=1, serials=[])
    shipment.receive()
    assert shipment.status is Status.RECEIVED
    assert (shipment.received_good, shipment.damaged, shipment.short) == (8, 1, 1)
    types = [e.TYPE for e in shipment.pending]
    assert types == [
        "shipment.dispatched",
        "shipment.arrived_at_hub",
        "shipment.inspected",
        "shipment.departed_hub",
        "shipment.handed_over",
        "shipment.received",
    ]
    again = Shipment.rehydrate("SHP-1", [*planned().pending, *shipment.pending])
    assert again.version == 6 and again.status is Status.RECEIVED


def test_plan_needs_a_positive_quantity() -> None:
    with pytest.raises(DomainError, match="positive quantity"):
        planned(quantity=0)


@pytest.mark.parametrize(
    ("steps", "command", "message"),
    [
        ([], lambda s: s.arrive(), "cannot arrive at the hub: it is planned"),
        (["dispatch"], lambda s: s.depart(), "cannot leave the hub: it is on its way"),
        (["dispatch"], lambda s: s.dispatch("air", "X", []), "cannot be dispatched"),
        (["dispatch", "arrive"], lambda s: s.depart(), "has not been inspected yet"),
        (["dispatch", "arrive"], lambda s: s.hand_over(10, 0, 0, []), "cannot be handed over"),
        ([], lambda s: s.receive(), "cannot be confirmed as received: it is planned"),
        (["dispatch", "arrive", "pass"], lambda s: s.inspect("passed"), "cannot be inspected"),
    ],
)
def test_illegal_transitions_explain_themselves(
    steps: list[str], command: object, message: str
) -> None:
    shipment = planned()
    actions: dict[str, Callable[[], object]] = {
        "dispatch": lambda: shipment.dispatch("road", "DHL-1", []),
        "arrive": shipment.arrive,
        "pass": lambda: shipment.inspect("passed"),
    }
    for step in steps:
        actions[step]()
    with pytest.raises(DomainError, match=message):
        command(shipment)  # type: ignore[operator]


def test_a_held_shipment_cannot_depart_until_a_second_inspection_passes_it() -> None:
    shipment = planned()
    shipment.dispatch("rail", "PKP-7", [])
    shipment.arrive()
    with pytest.raises(DomainError, match="needs notes"):
        shipment.inspect("held", "  ")
    shipment.inspect("held", "seal broken")
    held = shipment.status  # named: mypy would carry the narrowing past the calls below
    assert held is Status.HELD
    with pytest.raises(DomainError, match=r"held at inspection \(seal broken\)"):
        shipment.depart()
    shipment.inspect("held", "still waiting for the donor's paperwork")
    shipment.inspect("passed", "resealed and counted")
    shipment.depart()
    assert shipment.status is Status.DEPARTED_HUB


def test_handover_quantities_must_add_up_to_what_is_left() -> None:
    shipment = departed(quantity=10)
    with pytest.raises(DomainError, match="add up to the 10 items on the shipment; they add up"):
        shipment.hand_over(5, 1, 1, [])
    with pytest.raises(DomainError, match="cannot be negative"):
        shipment.hand_over(12, -2, 0, [])
    shipment.hand_over(10, 0, 0, [])


def test_losses_reduce_what_can_be_handed_over() -> None:
    shipment = planned(quantity=10)
    shipment.dispatch("road", "DHL-1", [])
    shipment.report_loss(3, "truck accident")
    shipment.arrive()
    shipment.inspect("passed")
    shipment.depart()
    with pytest.raises(DomainError, match=r"7 items on the shipment \(10 shipped, 3 lost\)"):
        shipment.hand_over(10, 0, 0, [])
    shipment.hand_over(6, 0, 1, [])
    assert shipment.remaining == 7


def test_a_loss_cannot_exceed_what_is_left_and_losing_all_ends_the_shipment() -> None:
    shipment = planned(quantity=4)
    shipment.dispatch("air", "AF-1", [])
    with pytest.raises(DomainError, match="positive quantity"):
        shipment.report_loss(0, "none")
    shipment.report_loss(3, "crash")
    with pytest.raises(DomainError, match="only 1 of the 4 items"):
        shipment.report_loss(2, "crash")
    shipment.report_loss(1, "fire")
    assert shipment.status is Status.LOST
    with pytest.raises(DomainError, match="was lost in full"):
        shipment.arrive()


def test_delays_and_losses_only_before_handover() -> None:
    shipment = departed()
    shipment.delay("border queue", date(2026, 12, 1), TODAY)
    assert shipment.eta == date(2026, 12, 1)
    with pytest.raises(DomainError, match="before the day the delay was reported"):
        shipment.delay("queue", date(2026, 11, 1), TODAY)
    shipment.hand_over(10, 0, 0, [])
    with pytest.raises(DomainError, match="Delays are recorded before handover"):
        shipment.delay("late", date(2026, 12, 2), TODAY)
    with pytest.raises(DomainError, match="Losses are recorded before handover"):
        shipment.report_loss(1, "stolen")


def test_enhanced_items_need_one_serial_per_item_at_dispatch() -> None:
    shipment = planned(quantity=3, eum_class="enhanced")
    with pytest.raises(DomainError, match=r"one serial number per item dispatched \(3\), not 2"):
        shipment.dispatch("air", "AF-1", serials(2))
    with pytest.raises(DomainError, match="repeat SN-1"):
        shipment.dispatch("air", "AF-1", ["SN-1", "SN-1", "SN-2"])
    shipment.dispatch("air", "AF-1", serials(3))
    assert shipment.serials == ["SN-1", "SN-2", "SN-3"]


def test_matching_serials_at_handover_raise_no_discrepancy() -> None:
    shipment = departed(quantity=3, eum_class="enhanced")
    shipment.hand_over(2, 1, 0, ["SN-3", "SN-1", "SN-2"])
    assert not any(isinstance(e, ShipmentEumDiscrepancy) for e in shipment.pending)


def test_missing_or_different_serials_at_handover_are_recorded_as_a_discrepancy() -> None:
    shipment = departed(quantity=3, eum_class="enhanced")
    shipment.hand_over(2, 0, 1, ["SN-1", "SN-9"])
    handed, discrepancy = shipment.pending[-2:]
    assert isinstance(handed, ShipmentHandedOver)
    assert discrepancy == ShipmentEumDiscrepancy(missing=["SN-2", "SN-3"], unexpected=["SN-9"])
    assert (shipment.missing_serials, shipment.unexpected_serials) == (["SN-2", "SN-3"], ["SN-9"])


def test_more_serials_than_items_present_is_refused() -> None:
    shipment = departed(quantity=2, eum_class="enhanced")
    with pytest.raises(DomainError, match="3 serial numbers were given for 2 items"):
        shipment.hand_over(2, 0, 0, serials(3))


def test_serials_named_as_lost_are_not_expected_at_handover() -> None:
    shipment = planned(quantity=3, eum_class="enhanced")
    shipment.dispatch("air", "AF-1", serials(3))
    with pytest.raises(DomainError, match="not on the shipment: SN-7"):
        shipment.report_loss(1, "stolen", ["SN-7"])
    with pytest.raises(DomainError, match=r"one serial per lost item \(1\), not 2"):
        shipment.report_loss(1, "stolen", ["SN-1", "SN-2"])
    shipment.report_loss(1, "stolen", ["SN-2"])
    shipment.arrive()
    shipment.inspect("passed")
    shipment.depart()
    shipment.hand_over(2, 0, 0, ["SN-1", "SN-3"])
    assert not any(isinstance(e, ShipmentEumDiscrepancy) for e in shipment.pending)


def test_a_loss_before_dispatch_lowers_the_serials_needed() -> None:
    shipment = planned(quantity=3, eum_class="enhanced")
    with pytest.raises(DomainError, match="before dispatch"):
        shipment.report_loss(1, "depot fire", ["SN-1"])
    shipment.report_loss(1, "depot fire")
    shipment.dispatch("road", "T-1", serials(2))


def test_cancellation_before_dispatch_cancels_and_afterwards_is_refused() -> None:
    early = planned()
    early.respond_to_cancellation("pledge withdrawn")
    early.respond_to_cancellation("pledge withdrawn")  # again: nothing more to say
    assert early.status is Status.CANCELLED
    assert early.pending == [ShipmentCancelled(reason="pledge withdrawn")]
    with pytest.raises(DomainError, match="was cancelled"):
        early.dispatch("road", "X", [])

    late = planned()
    late.dispatch("road", "DHL-1", [])
    late.respond_to_cancellation("requirement cancelled")
    refusal = late.pending[-1]
    assert isinstance(refusal, ShipmentCancellationRefused)
    assert refusal.status == "dispatched"
    assert "can no longer be cancelled" in refusal.refusal
    assert late.status is Status.DISPATCHED


@given(
    quantity=st.integers(1, 50),
    losses=st.lists(st.integers(-5, 60), max_size=5),
    split=st.tuples(st.integers(-5, 60), st.integers(-5, 60)),
)
def test_quantities_never_go_negative_and_always_add_up(
    quantity: int, losses: list[int], split: tuple[int, int]
) -> None:
    shipment = planned(quantity)
    shipment.dispatch("road", "DHL-1", [])
    for loss in losses:
        with contextlib.suppress(DomainError):
            shipment.report_loss(loss, "lost")
        assert 0 <= shipment.lost <= quantity
    if shipment.status is Status.LOST:
        return
    shipment.arrive()
    shipment.inspect("passed")
    shipment.depart()
    good, damaged = split
    try:
        shipment.hand_over(good, damaged, shipment.remaining - good - damaged, [])
    except DomainError:
        assert shipment.status is Status.DEPARTED_HUB
        return
    assert min(shipment.received_good, shipment.damaged, shipment.short) >= 0
    assert shipment.received_good + shipment.damaged + shipment.short + shipment.lost == quantity
