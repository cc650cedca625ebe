"""Allocation planner: full plan and incremental re-plan (pure domain calls, no I/O).

Synthetic, seeded: 200 items (50 substitute pairs, 100 single items: 150 families), 10,000
endorsed requirements and 10,000 confirmed pledges. Figures:
- full plan of everything open (`Planner.families` + `Planner.plan_all`), best of 3, beside a
  simple greedy matcher (priority order, first fitting pledge) timed on the same input;
- incremental re-plan after one pledge withdrawal: `Planner.plan` on the withdrawn pledge's family
  with the full plan in place (median over 25 pledges), beside the full plan it replaces.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from datetime import date, timedelta

from bench.report import Result
from services.allocation.domain import (
    FamilyState,
    HubRule,
    ItemGraph,
    Need,
    Offer,
    Placed,
    Plan,
    Planner,
    Policy,
    days_late,
)
from shared.catalogue import CAPABILITIES, Item, hubs

SEED = 20250301
ITEMS = 200
PAIRS = 50
REQUIREMENTS = 10_000
PLEDGES = 10_000
FULL_TARGET_S = 5.0
INCREMENTAL_TARGET_MS = 50.0
DAY0 = date(2025, 1, 1)


def synthetic() -> tuple[ItemGraph, list[Need], list[Offer]]:
    rng = random.Random(SEED)
    codes = [f"ITEM-{i:03}" for i in range(ITEMS)]
    items = []
    for i, code in enumerate(codes):
        partner = i ^ 1 if i < 2 * PAIRS else None  # 0-1, 2-3, ... are substitutes
        items.append(
            Item(
                code=code,
                name=code,
                capability=CAPABILITIES[i % len(CAPABILITIES)],
                unit="units",
                substitutes=(codes[partner],) if partner is not None else (),
            )
        )
    needs = [
        Need(
            f"R-{i:05}",
            rng.choice(codes),
            rng.randint(1, 500),
            rng.randint(1, 4),
            DAY0 + timedelta(days=rng.randint(30, 210)),
        )
        for i in range(REQUIREMENTS)
    ]
    offers = [
        Offer(
            f"P-{i:05}",
            rng.choice(codes),
            rng.randint(1, 500),
            DAY0 + timedelta(days=rng.randint(0, 180)),
            donor=rng.choice(["DE", "PL", "US", "GB", "FR", "NL", "NO", "RO"]),
        )
        for i in range(PLEDGES)
    ]
    return ItemGraph(items), needs, offers


def greedy(graph: ItemGraph, needs: list[Need], offers: list[Offer], lead: int) -> list[Placed]:
    """Baseline: needs by (priority, needed_by); each takes on-time pledges first, then late."""
    free = {o.id: o.quantity for o in offers}
    by_item: dict[str, list[Offer]] = defaultdict(list)
    for o in offers:
        by_item[o.item_code].append(o)
    result: list[Placed] = []
    for n in sorted(needs, key=lambda n: (n.priority, n.needed_by, n.id)):
        candidates = [o for code in graph.family(n.item_code) for o in by_item[code]]
        candidates = [o for o in candidates if graph.compatible(n.item_code, o.item_code)]
        cutoff = n.needed_by - timedelta(days=lead)
        candidates.sort(key=lambda o: (o.available_from > cutoff, o.available_from, o.id))
        want = n.quantity
        for o in candidates:
            if want == 0:
                break
            take = min(want, free[o.id])
            if take:
                free[o.id] -= take
                want -= take
                result.append(Placed(f"G-{len(result)}", n.id, o.id, o.item_code, take))
    return result


def _covered_by_priority(needs: list[Need], allocated: dict[str, int]) -> str:
    shares = []
    for priority in (1, 2, 3, 4):
        group = [n for n in needs if n.priority == priority]
        total = sum(n.quantity for n in group)
        got = sum(min(allocated.get(n.id, 0), n.quantity) for n in group)
        shares.append(f"p{priority} {100 * got / total:.1f}%")
    return ", ".join(shares)


def _late_units(rows: list[Placed], needs: list[Need], offers: list[Offer], lead: int) -> int:
    need_of, offer_of = {n.id: n for n in needs}, {o.id: o for o in offers}
    return sum(
        r.quantity
        for r in rows
        if days_late(
            offer_of[r.pledge_id].available_from, need_of[r.requirement_id].needed_by, lead
        )
    )


def _placed(plan: Plan) -> list[Placed]:
    return [
        Placed(f"A-{i}", p.requirement_id, p.pledge_id, p.item_code, p.quantity)
        for i, p in enumerate(plan.proposals)
    ]


async def run() -> list[Result]:
    graph, needs, offers = synthetic()
    planner = Planner(graph, HubRule(hubs().values()), Policy())

    full_times, plan = [], Plan()
    for _ in range(3):
        started = time.perf_counter()
        plan = planner.plan_all(planner.families(needs, offers), "bench")
        full_times.append(time.perf_counter() - started)
    started = time.perf_counter()
    baseline = greedy(graph, needs, offers, planner.policy.lead_days)
    greedy_s = time.perf_counter() - started

    solver_cover: dict[str, int] = defaultdict(int)
    for p in plan.proposals:
        solver_cover[p.requirement_id] += p.quantity
    greedy_cover: dict[str, int] = defaultdict(int)
    for g in baseline:
        greedy_cover[g.requirement_id] += g.quantity
    full_s = min(full_times)
    lead = planner.policy.lead_days
    late = _late_units(_placed(plan), needs, offers, lead)
    greedy_late = _late_units(baseline, needs, offers, lead)

    # Incremental: withdraw one pledge with the whole plan in place, re-plan its family only.
    placed = _placed(plan)
    families = dict(planner.families(needs, offers, placed))
    family_of = {o.id: graph.family_key(o.item_code) for o in offers}
    used = sorted({p.pledge_id for p in placed})
    rng = random.Random(SEED)
    incremental_ms, cancelled = [], []
    for pledge_id in rng.sample(used, 25):
        state = families[family_of[pledge_id]]
        withdrawn = [
            Offer(o.id, o.item_code, o.quantity, o.available_from, o.donor, "withdrawn", "bench")
            if o.id == pledge_id
            else o
            for o in state.offers
        ]
        changed = FamilyState(state.needs, withdrawn, state.placed, state.rejected)
        started = time.perf_counter()
        replan = planner.plan(changed, f"pledge {pledge_id} withdrawn")
        incremental_ms.append((time.perf_counter() - started) * 1000)
        cancelled.append(len(replan.cancellations))
    incremental = statistics.median(incremental_ms)
    sizes = [len(s.needs) + len(s.offers) for s in families.values()]

    return [
        Result(
            name="allocation: full plan, 10k requirements x 10k pledges, 200 items",
            value=full_s,
            unit="s",
            baseline_name="greedy matcher, same input",
            baseline_value=greedy_s,
            target=f"<= {FULL_TARGET_S:g} s",
            met=full_s <= FULL_TARGET_S,
            notes=(
                f"{len(plan.proposals)} allocations vs greedy {len(baseline)}; covered "
                f"{sum(solver_cover.values())} vs greedy {sum(greedy_cover.values())} units, "
                f"late {late} vs greedy {greedy_late} units; "
                f"by priority: {_covered_by_priority(needs, solver_cover)} "
                f"(greedy {_covered_by_priority(needs, greedy_cover)}); "
                f"{len(families)} families, largest {max(sizes)} nodes"
            ),
        ),
        Result(
            name="allocation: incremental re-plan after one pledge withdrawal",
            value=incremental,
            unit="ms",
            baseline_name="full plan",
            baseline_value=full_s * 1000,
            target=f"<= {INCREMENTAL_TARGET_MS:g} ms",
            met=incremental <= INCREMENTAL_TARGET_MS,
            notes=(
                f"median of 25 pledges (max {max(incremental_ms):.1f} ms); "
                f"median {statistics.median(cancelled):.0f} allocations cancelled per re-plan"
            ),
        ),
    ]
