"""Properties of the planner over random families (hypothesis; pure, no I/O)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.allocation.domain import Need, Offer, Placed, Plan
from tests.unit.allocation_support import GEMT, HE, HE_ER, PAC3, TANK, planner

ITEMS = [HE, HE_ER, PAC3, GEMT, TANK]
DAY0 = date(2025, 1, 1)

needs_strategy = st.lists(
    st.builds(
        lambda i, item, q, p, d, s: Need(f"R-{i}", item, q, p, DAY0 + timedelta(days=d), s),
        st.integers(0, 10**6),
        st.sampled_from(ITEMS),
        st.integers(1, 500),
        st.integers(1, 4),
        st.integers(0, 120),
        st.sampled_from(["endorsed", "endorsed", "endorsed", "submitted", "cancelled"]),
    ),
    max_size=25,
    unique_by=lambda n: n.id,
)
offers_strategy = st.lists(
    st.builds(
        lambda i, item, q, d, s: Offer(f"P-{i}", item, q, DAY0 + timedelta(days=d), status=s),
        st.integers(0, 10**6),
        st.sampled_from(ITEMS),
        st.integers(1, 500),
        st.integers(0, 120),
        st.sampled_from(["confirmed", "confirmed", "confirmed", "announced", "withdrawn"]),
    ),
    max_size=25,
    unique_by=lambda o: o.id,
)


def _whole_plan(needs: list[Need], offers: list[Offer]) -> Plan:
    p = planner()
    return p.plan_all(p.families(needs, offers), "property")


@settings(max_examples=150, deadline=None)
@given(needs_strategy, offers_strategy)
def test_never_more_than_pledged_or_needed(needs: list[Need], offers: list[Offer]) -> None:
    plan = _whole_plan(needs, offers)
    by_need: dict[str, int] = defaultdict(int)
    by_offer: dict[str, int] = defaultdict(int)
    by_item_given: dict[str, int] = defaultdict(int)
    by_item_served: dict[str, int] = defaultdict(int)
    need_of = {n.id: n for n in needs}
    offer_of = {o.id: o for o in offers}
    graph = planner().items
    for proposal in plan.proposals:
        n, o = need_of[proposal.requirement_id], offer_of[proposal.pledge_id]
        assert proposal.quantity > 0
        assert n.status == "endorsed" and o.status == "confirmed"
        assert graph.compatible(n.item_code, o.item_code)
        assert proposal.item_code == o.item_code
        by_need[n.id] += proposal.quantity
        by_offer[o.id] += proposal.quantity
        by_item_given[o.item_code] += proposal.quantity
        by_item_served[n.item_code] += proposal.quantity
    for rid, quantity in by_need.items():
        assert quantity <= need_of[rid].quantity
    for pid, quantity in by_offer.items():
        assert quantity <= offer_of[pid].quantity
    for item in ITEMS:
        pledged = sum(o.quantity for o in offers if o.item_code == item and o.status == "confirmed")
        needed = sum(n.quantity for n in needs if n.item_code == item and n.status == "endorsed")
        assert by_item_given[item] <= pledged
        assert by_item_served[item] <= needed


@settings(max_examples=150, deadline=None)
@given(needs_strategy, offers_strategy)
def test_no_lower_priority_unit_where_a_higher_priority_need_is_short(
    needs: list[Need], offers: list[Offer]
) -> None:
    plan = _whole_plan(needs, offers)
    graph = planner().items
    covered: dict[str, int] = defaultdict(int)
    for proposal in plan.proposals:
        covered[proposal.requirement_id] += proposal.quantity
    short = [n for n in needs if n.status == "endorsed" and covered[n.id] < n.quantity]
    need_of = {n.id: n for n in needs}
    for proposal in plan.proposals:
        taker = need_of[proposal.requirement_id]
        for n in short:
            # Moving one unit of this pledge to `n` would cover a higher priority.
            assert not (
                n.priority < taker.priority and graph.compatible(n.item_code, proposal.item_code)
            ), f"{proposal} while {n.id} (priority {n.priority}) is short"


@settings(max_examples=100, deadline=None)
@given(needs_strategy, offers_strategy)
def test_replanning_keeps_every_commitment_that_still_fits(
    needs: list[Need], offers: list[Offer]
) -> None:
    p = planner()
    first = _whole_plan(needs, offers)
    placed = [
        Placed(f"A-{i}", x.requirement_id, x.pledge_id, x.item_code, x.quantity, "planner")
        for i, x in enumerate(first.proposals)
    ]
    # Approve everything, then add an urgent need for every item: nothing approved may move.
    urgent = [Need(f"U-{item}", item, 1000, 1, DAY0) for item in ITEMS]
    again = p.plan_all(p.families(needs + urgent, offers, placed), "urgent needs")
    assert again.cancellations == []
    assert all(x.requirement_id.startswith("U-") for x in again.proposals)
