"""The matcher: one item family's free pledge quantity against its open need, as a min-cost flow
(OR-Tools `SimpleMinCostFlow`; pure computation, no I/O).

Network: every pledge supplies its free quantity, every requirement demands its open quantity.
A pledge's units go to a compatible requirement (same item or declared substitute) or stay
unused (arc to SURPLUS, cost 0); a requirement's units come from pledges or stay short (arc
from SHORT, at a penalty that grows with the priority). SHORT→SURPLUS balances the two.

Objective, in order, encoded as per-unit costs whose ranges never overlap:
1. priority: leaving a unit of priority p uncovered costs (5 - p) * PRIORITY_STEP, and
   PRIORITY_STEP exceeds the largest pledge→requirement cost, so one more unit of a higher
   priority always beats any arrangement of lower ones (and covering always beats not);
2. dates: a pledge that cannot reach the handover by `needed_by` costs LATE plus LATE_PER_DAY
   per day late (capped), so on-time pledges come first and late ones by lateness;
3. the same item before a declared substitute (SUBSTITUTE);
4. stability: units on a new pair cost NEW_PAIR; a pair the current plan already proposes gets
   a parallel arc without that cost, as wide as its current quantity, so an unchanged family
   re-plans to exactly the plan it has and a change moves as little as it must;
5. fewer, larger allocations: FIT (0..100) grows with how unequal the pledge's free quantity and
   the requirement's open quantity are, so a requirement is filled whole by one pledge of its
   size rather than from fragments. The solver also returns a basic (tree) solution, which
   splits pledges and requirements no more than the quantities force (at most
   pledges + requirements - 1 allocations per family).
Ties: nodes and arcs are laid out in id order and the solver is deterministic, so the same
input always yields the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from ortools.graph.python import min_cost_flow

MAX_PRIORITY = 4
PRIORITY_STEP = 1_000_000
LATE = 100_000
LATE_PER_DAY = 1_000
MAX_LATE_DAYS = 365
SUBSTITUTE = 500
NEW_PAIR = 200
FIT = 100


@dataclass(frozen=True)
class Demand:
    requirement_id: str
    item_code: str
    quantity: int  # open: not yet covered by approved allocations
    priority: int
    needed_by: date


@dataclass(frozen=True)
class Supply:
    pledge_id: str
    item_code: str
    quantity: int  # free: not yet taken by approved allocations
    available_from: date


@dataclass(frozen=True)
class Match:
    requirement_id: str
    pledge_id: str
    quantity: int


Pair = tuple[str, str]  # (requirement_id, pledge_id)


def match(
    demands: Sequence[Demand],
    supplies: Sequence[Supply],
    compatible: Callable[[str, str], bool],
    *,
    lead_days: int,
    excluded: Collection[Pair] = frozenset(),
    incumbents: Mapping[Pair, int] | None = None,
) -> list[Match]:
    """The optimal assignment, as matches sorted by (requirement_id, pledge_id).

    `incumbents`: the quantity of each pair the current plan proposes (see the module doc).
    """
    needs = sorted((d for d in demands if d.quantity > 0), key=lambda d: d.requirement_id)
    offers = sorted((s for s in supplies if s.quantity > 0), key=lambda s: s.pledge_id)
    if not needs or not offers:
        return []
    pair_offer, pair_need = _candidate_pairs(needs, offers, compatible, excluded)
    if pair_offer.size == 0:
        return []
    free = np.array([s.quantity for s in offers], dtype=np.int64)
    open_ = np.array([d.quantity for d in needs], dtype=np.int64)
    cost = _pair_costs(needs, offers, pair_offer, pair_need, free, open_, lead_days)
    capacity = np.minimum(free[pair_offer], open_[pair_need])
    held = _held(needs, offers, pair_offer, pair_need, incumbents or {})
    # Arcs: every pair at its full cost, then the incumbent pairs again without NEW_PAIR.
    arc_offer = np.concatenate([pair_offer, pair_offer[held.pairs]])
    arc_need = np.concatenate([pair_need, pair_need[held.pairs]])
    arc_cost = np.concatenate([cost + NEW_PAIR, cost[held.pairs]])
    arc_capacity = np.concatenate([capacity, np.minimum(held.quantity, capacity[held.pairs])])
    flows = _solve(needs, offers, arc_offer, arc_need, arc_capacity, arc_cost, free, open_)
    per_pair = flows[: pair_offer.size].copy()
    np.add.at(per_pair, held.pairs, flows[pair_offer.size :])
    used = np.nonzero(per_pair > 0)[0]
    result = [
        Match(needs[pair_need[k]].requirement_id, offers[pair_offer[k]].pledge_id, int(per_pair[k]))
        for k in used
    ]
    return sorted(result, key=lambda m: (m.requirement_id, m.pledge_id))


def _candidate_pairs(
    needs: Sequence[Demand],
    offers: Sequence[Supply],
    compatible: Callable[[str, str], bool],
    excluded: Collection[Pair],
) -> tuple[np.ndarray, np.ndarray]:
    """(offer index, need index) of every allowed pair, in offer-then-need order."""
    items = sorted({d.item_code for d in needs} | {s.item_code for s in offers})
    index = {code: i for i, code in enumerate(items)}
    fits = np.array([[compatible(a, b) for b in items] for a in items], dtype=bool)
    need_item = np.array([index[d.item_code] for d in needs])
    offer_item = np.array([index[s.item_code] for s in offers])
    allowed = fits[need_item][:, offer_item].T  # [offer, need]
    if excluded:
        need_at = {d.requirement_id: i for i, d in enumerate(needs)}
        offer_at = {s.pledge_id: i for i, s in enumerate(offers)}
        for requirement_id, pledge_id in excluded:
            if requirement_id in need_at and pledge_id in offer_at:
                allowed[offer_at[pledge_id], need_at[requirement_id]] = False
    pair_offer, pair_need = np.nonzero(allowed)
    return pair_offer.astype(np.int32), pair_need.astype(np.int32)


def _pair_costs(
    needs: Sequence[Demand],
    offers: Sequence[Supply],
    pair_offer: np.ndarray,
    pair_need: np.ndarray,
    free: np.ndarray,
    open_: np.ndarray,
    lead_days: int,
) -> np.ndarray:
    available = np.array([s.available_from.toordinal() for s in offers], dtype=np.int64)
    needed = np.array([d.needed_by.toordinal() for d in needs], dtype=np.int64)
    late_days = np.clip(available[pair_offer] + lead_days - needed[pair_need], 0, MAX_LATE_DAYS)
    cost = np.where(late_days > 0, LATE + LATE_PER_DAY * late_days, 0)
    need_item = np.array([d.item_code for d in needs], dtype=object)
    offer_item = np.array([s.item_code for s in offers], dtype=object)
    cost += SUBSTITUTE * (need_item[pair_need] != offer_item[pair_offer])
    a, b = free[pair_offer], open_[pair_need]
    cost += FIT * np.abs(a - b) // np.maximum(a, b)
    return cost.astype(np.int64)


@dataclass(frozen=True)
class _Held:
    pairs: np.ndarray  # indices into the pair arrays
    quantity: np.ndarray


def _held(
    needs: Sequence[Demand],
    offers: Sequence[Supply],
    pair_offer: np.ndarray,
    pair_need: np.ndarray,
    incumbents: Mapping[Pair, int],
) -> _Held:
    if not incumbents:
        return _Held(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    position = {
        (needs[n].requirement_id, offers[o].pledge_id): k
        for k, (o, n) in enumerate(zip(pair_offer.tolist(), pair_need.tolist(), strict=True))
    }
    found = sorted((position[pair], quantity) for pair, quantity in incumbents.items()
                   if pair in position and quantity > 0)  # fmt: skip
    return _Held(
        np.array([k for k, _ in found], dtype=np.int64),
        np.array([q for _, q in found], dtype=np.int64),
    )


def _solve(
    needs: Sequence[Demand],
    offers: Sequence[Supply],
    arc_offer: np.ndarray,
    arc_need: np.ndarray,
    arc_capacity: np.ndarray,
    arc_cost: np.ndarray,
    free: np.ndarray,
    open_: np.ndarray,
) -> np.ndarray:
    """Flows on the pledge→requirement arcs, in the order given."""
    n_offers, n_needs = len(offers), len(needs)
    need_node = np.arange(n_needs, dtype=np.int32) + n_offers
    short, surplus = n_offers + n_needs, n_offers + n_needs + 1
    priority = np.clip([d.priority for d in needs], 1, MAX_PRIORITY)
    penalty = PRIORITY_STEP * (MAX_PRIORITY + 1 - priority)
    total_open, total_free = int(open_.sum()), int(free.sum())
    tails = np.concatenate(
        [arc_offer, np.arange(n_offers), np.full(n_needs, short), [short]]
    ).astype(np.int32)
    heads = np.concatenate(
        [need_node[arc_need], np.full(n_offers, surplus), need_node, [surplus]]
    ).astype(np.int32)
    capacities = np.concatenate([arc_capacity, free, open_, [total_open]]).astype(np.int64)
    costs = np.concatenate([arc_cost, np.zeros(n_offers, dtype=np.int64), penalty, [0]]).astype(
        np.int64
    )
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    supplies = np.concatenate([free, -open_, [total_open], [-total_free]]).astype(np.int64)
    flow.set_nodes_supplies(np.arange(surplus + 1, dtype=np.int32), supplies)
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    result: np.ndarray = flow.flows(np.arange(arc_offer.size, dtype=np.int32))
    return result
