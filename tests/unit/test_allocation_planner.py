"""The allocation planner and matcher with hand-checked plans (pure, no I/O)."""

from __future__ import annotations

import random
from datetime import date

from services.allocation.domain import Placed, Recorded, Shortfall
from tests.unit.allocation_support import (
    GEMT,
    HE,
    HE_ER,
    NEEDED,
    PAC3,
    TANK,
    approved,
    need,
    offer,
    pairs,
    planner,
    proposed,
    state,
)


def test_higher_priority_is_covered_first() -> None:
    plan = planner().plan(
        state([need("R-routine", 100, priority=4), need("R-critical", 100, priority=1)],
              [offer("P-1", 100)]),
        "test",
    )  # fmt: skip
    assert pairs(plan) == {("R-critical", "P-1"): 100}
    assert plan.shortfalls == [
        Shortfall(
            "R-routine",
            100,
            "0 of 100 covered: the confirmed pledges of ART-155-HE and its substitutes are all "
            "allocated (to needs of higher or equal priority, or to approved commitments)",
        )
    ]


def test_a_pledge_on_time_is_preferred_to_a_late_one() -> None:
    # Lead 7 days: on time means available by 2025-02-22 for a need of 2025-03-01.
    late, on_time = offer("P-late", 50, available=date(2025, 2, 23)), offer("P-ok", 50)
    plan = planner().plan(state([need("R-1", 50)], [late, on_time]), "test")
    assert pairs(plan) == {("R-1", "P-ok"): 50}
    assert plan.proposals[0].handover_by == NEEDED


def test_a_late_pledge_is_used_when_nothing_else_fits_and_hands_over_when_it_can() -> None:
    plan = planner().plan(
        state([need("R-1", 50)], [offer("P-late", 50, available=date(2025, 3, 10))]), "test"
    )
    (proposal,) = plan.proposals
    assert proposal.quantity == 50
    assert proposal.handover_by == date(2025, 3, 17)  # available + 7 lead days
    assert "16 days late" in proposal.rationale


def test_among_late_pledges_the_least_late_wins() -> None:
    plan = planner().plan(
        state([need("R-1", 50)], [offer("P-a", 50, available=date(2025, 4, 1)),
                                  offer("P-b", 50, available=date(2025, 3, 2))]),
        "test",
    )  # fmt: skip
    assert pairs(plan) == {("R-1", "P-b"): 50}


def test_declared_substitutes_serve_a_need_and_the_same_item_comes_first() -> None:
    plan = planner().plan(state([need("R-1", 100)], [offer("P-er", 100, item=HE_ER)]), "test")
    (proposal,) = plan.proposals
    assert (proposal.pledge_id, proposal.item_code, proposal.quantity) == ("P-er", HE_ER, 100)
    assert "declared substitute" in proposal.rationale

    both = planner().plan(
        state([need("R-1", 100)], [offer("P-er", 100, item=HE_ER), offer("P-he", 100)]), "test"
    )
    assert pairs(both) == {("R-1", "P-he"): 100}


def test_items_that_are_not_substitutes_never_match() -> None:
    plan = planner().plan(state([need("R-tank", 5, item=TANK)], [offer("P-1", 5)]), "test")
    assert plan.proposals == []
    assert plan.shortfalls[0].reason.endswith(
        "no confirmed pledge of ARM-LEO2A4 or a declared substitute"
    )


def test_partial_cover_fills_from_the_best_fitting_pledge_first() -> None:
    # Fit per unit: P-100 vs 150 -> 33, P-80 vs 150 -> 46: take all of P-100, the rest from P-80.
    plan = planner().plan(
        state([need("R-1", 150, priority=1)], [offer("P-100", 100), offer("P-80", 80)]), "test"
    )
    assert pairs(plan) == {("R-1", "P-100"): 100, ("R-1", "P-80"): 50}
    assert plan.shortfalls == []


def test_many_to_many_with_fewest_allocations() -> None:
    # Hand-checked: with x = P-100→R-150 the cost is 9560 - 21x, so x = 100: three allocations.
    plan = planner().plan(
        state(
            [need("R-150", 150, priority=1), need("R-30", 30, priority=1)],
            [offer("P-100", 100), offer("P-80", 80, item=HE_ER)],
        ),
        "test",
    )
    assert pairs(plan) == {("R-150", "P-100"): 100, ("R-150", "P-80"): 50, ("R-30", "P-80"): 30}


def test_sizes_that_fit_are_paired_whole() -> None:
    plan = planner().plan(
        state([need("R-150", 150, priority=1), need("R-60", 60)],
              [offer("P-100", 100), offer("P-150", 150)]),
        "test",
    )  # fmt: skip
    assert pairs(plan) == {("R-150", "P-150"): 150, ("R-60", "P-100"): 60}


def test_hub_and_handover_follow_the_configuration() -> None:
    plan = planner().plan(
        state([need("R-art", 10), need("R-ad", 4, item=PAC3)],
              [offer("P-art", 10), offer("P-ad", 4, item=GEMT)]),
        "test",
    )  # fmt: skip
    hubs = {p.requirement_id: p.hub for p in plan.proposals}
    assert hubs == {"R-art": "RO-SUC", "R-ad": "PL-RZE"}


def test_only_endorsed_requirements_and_confirmed_pledges_take_part() -> None:
    plan = planner().plan(
        state(
            [need("R-new", 10, status="submitted"), need("R-ok", 10)],
            [offer("P-announced", 10, status="announced"), offer("P-ok", 5)],
        ),
        "test",
    )
    assert pairs(plan) == {("R-ok", "P-ok"): 5}
    assert [s.requirement_id for s in plan.shortfalls] == ["R-ok"]


def test_the_same_input_gives_the_same_plan_whatever_its_order() -> None:
    rng = random.Random(7)
    needs = [need(f"R-{i:02}", rng.randint(1, 60), rng.randint(1, 4),
                  item=rng.choice([HE, HE_ER]), needed_by=date(2025, 3, rng.randint(1, 28)))
             for i in range(25)]  # fmt: skip
    offers = [offer(f"P-{i:02}", rng.randint(1, 60), item=rng.choice([HE, HE_ER]),
                    available=date(2025, 2, rng.randint(1, 28)))
              for i in range(20)]  # fmt: skip
    first = planner().plan(state(needs, offers), "test")
    for _ in range(3):
        rng.shuffle(needs)
        rng.shuffle(offers)
        assert planner().plan(state(list(needs), list(offers)), "test") == first


def test_approved_allocations_are_never_moved_for_a_higher_priority() -> None:
    placed = [approved("A-1", "R-routine", "P-1", 100)]
    needs = [need("R-routine", 100, priority=4), need("R-critical", 100, priority=1)]
    plan = planner().plan(state(needs, [offer("P-1", 100)], placed), "test")
    assert plan.cancellations == []
    assert plan.proposals == []
    assert [(s.requirement_id, s.open_quantity) for s in plan.shortfalls] == [("R-critical", 100)]


def test_proposals_give_way_to_a_higher_priority_and_are_cancelled_with_a_reason() -> None:
    placed = [proposed("A-1", "R-routine", "P-1", 100)]
    needs = [need("R-routine", 100, priority=4), need("R-critical", 100, priority=1)]
    plan = planner().plan(
        state(needs, [offer("P-1", 100)], placed), "requirement R-critical endorsed"
    )
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-1", "re-planned after requirement R-critical endorsed")
    ]
    assert pairs(plan) == {("R-critical", "P-1"): 100}


def test_a_proposal_the_plan_repeats_is_kept_as_it_is() -> None:
    placed = [proposed("A-1", "R-1", "P-1", 40)]
    plan = planner().plan(
        state([need("R-1", 40)], [offer("P-1", 40), offer("P-2", 40)], placed), "x"
    )
    assert not plan


def test_a_reduced_pledge_shrinks_the_lowest_priority_commitment_first() -> None:
    placed = [approved("A-high", "R-high", "P-1", 50), approved("A-low", "R-low", "P-1", 50)]
    needs = [need("R-high", 50, priority=1), need("R-low", 50, priority=3)]
    plan = planner().plan(state(needs, [offer("P-1", 60)], placed), "pledge P-1 reduced")
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-low", "pledge P-1 reduced: pledge P-1 now holds 60, so it shrinks from 50 to 10 "
                  "(a new approved allocation replaces it)"),
    ]  # fmt: skip
    (replacement,) = plan.proposals
    assert (replacement.requirement_id, replacement.quantity) == ("R-low", 10)
    assert (replacement.replaces, replacement.approved_by) == ("A-low", "planner-1")
    assert [(s.requirement_id, s.open_quantity) for s in plan.shortfalls] == [("R-low", 40)]


def test_freed_quantity_is_rematched_from_other_pledges() -> None:
    placed = [approved("A-1", "R-1", "P-1", 80)]
    offers = [offer("P-1", 80, status="withdrawn", status_reason="stock needed at home"),
              offer("P-2", 100, item=HE_ER)]  # fmt: skip
    plan = planner().plan(state([need("R-1", 80)], offers, placed), "pledge P-1 withdrawn")
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-1", "pledge P-1 withdrawn: stock needed at home")
    ]
    assert pairs(plan) == {("R-1", "P-2"): 80}


def test_a_cancelled_requirement_releases_its_allocations_to_others() -> None:
    placed = [approved("A-1", "R-gone", "P-1", 30)]
    needs = [need("R-gone", 30, status="cancelled", status_reason="duplicate"), need("R-2", 30)]
    plan = planner().plan(state(needs, [offer("P-1", 30)], placed), "requirement R-gone cancelled")
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-1", "requirement R-gone cancelled: duplicate")
    ]
    assert pairs(plan) == {("R-2", "P-1"): 30}


def test_a_requirement_amended_down_shrinks_from_the_latest_pledge() -> None:
    placed = [approved("A-early", "R-1", "P-early", 50),
              approved("A-late", "R-1", "P-late", 50)]  # fmt: skip
    offers = [offer("P-early", 50), offer("P-late", 50, available=date(2025, 2, 1))]
    plan = planner().plan(state([need("R-1", 70)], offers, placed), "requirement R-1 amended")
    assert [c.allocation_id for c in plan.cancellations] == ["A-late"]
    assert pairs(plan) == {("R-1", "P-late"): 20}
    assert plan.proposals[0].approved_by == "planner-1"


def test_fulfilled_requirements_keep_commitments_and_drop_proposals() -> None:
    placed = [approved("A-1", "R-1", "P-1", 10), proposed("A-2", "R-1", "P-2", 5)]
    needs = [need("R-1", 15, status="fulfilled"), need("R-2", 20)]
    plan = planner().plan(state(needs, [offer("P-1", 10), offer("P-2", 20)], placed), "x")
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-2", "requirement R-1 fulfilled")
    ]
    assert pairs(plan) == {("R-2", "P-2"): 20}


def test_an_allocation_lost_in_full_is_cancelled_and_its_need_rematched() -> None:
    # Quantities exclude lost units: all 25 of A-1 were lost, and P-1 lost them too.
    placed = [approved("A-1", "R-1", "P-1", 0)]
    plan = planner().plan(
        state([need("R-1", 25)], [offer("P-1", 75), offer("P-2", 25)], placed),
        "shipment S-1 lost 25",
    )
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-1", "shipment S-1 lost 25: nothing of it is left to deliver")
    ]
    assert pairs(plan) == {("R-1", "P-2"): 25}


def test_rejected_pairs_are_not_proposed_again() -> None:
    plan = planner().plan(
        state([need("R-1", 10)], [offer("P-1", 10), offer("P-2", 10, item=HE_ER)],
              rejected=frozenset({("R-1", "P-1")})),
        "allocation rejected",
    )  # fmt: skip
    assert pairs(plan) == {("R-1", "P-2"): 10}


def test_a_shortfall_is_recorded_once_and_cleared_when_covered() -> None:
    needs = [need("R-1", 10)]
    first = planner().plan(state(needs, []), "x")
    (short,) = first.shortfalls
    assert short.open_quantity == 10
    recorded = {"R-1": Recorded(short.open_quantity, short.reason)}
    assert planner().plan(state(needs, [], shortfalls=recorded), "y").shortfalls == []
    covered = planner().plan(state(needs, [offer("P-1", 10)], shortfalls=recorded), "z")
    assert covered.shortfalls == [Shortfall("R-1", 0, "covered")]


def test_families_split_the_state_by_substitution() -> None:
    families = planner().families(
        [need("R-he", 1), need("R-ad", 1, item=GEMT), need("R-x", 1, item="UNKNOWN-ITEM")],
        [offer("P-er", 1, item=HE_ER), offer("P-pac", 1, item=PAC3)],
    )
    layout = {
        key: (sorted(n.id for n in s.needs), sorted(o.id for o in s.offers)) for key, s in families
    }
    assert layout == {
        "AD-PATRIOT-GEMT": (["R-ad"], ["P-pac"]),
        "ART-155-HE": (["R-he"], ["P-er"]),
        "UNKNOWN-ITEM": (["R-x"], []),
    }


def test_a_proposal_with_outdated_terms_is_reissued() -> None:
    # Proposed before the catalogue knew the item's capability: the general hub.
    stale = Placed("A-1", "R-1", "P-1", HE, 40, hub="PL-RZE", handover_by=NEEDED)
    plan = planner().plan(state([need("R-1", 40)], [offer("P-1", 40)], [stale]), "item added")
    assert [(c.allocation_id, c.reason) for c in plan.cancellations] == [
        ("A-1", "re-planned after item added")
    ]
    assert [(p.pledge_id, p.quantity, p.hub) for p in plan.proposals] == [("P-1", 40, "RO-SUC")]
    current = Placed("A-1", "R-1", "P-1", HE, 40, hub="RO-SUC", handover_by=NEEDED)
    assert not planner().plan(state([need("R-1", 40)], [offer("P-1", 40)], [current]), "again")
