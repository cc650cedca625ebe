"""Why a requirement is or is not covered: its allocations and every pledge that could serve it,
each with the reason it was or was not used (pure; read by `GET /requirements/{id}/coverage`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from services.allocation.domain.items import ItemGraph
from services.allocation.domain.logistics import days_late
from services.allocation.domain.model import Need, Offer, Placed, Recorded

LISTED = 5  # other requirements named when a pledge is taken


@dataclass(frozen=True)
class Candidate:
    pledge_id: str
    donor: str
    item_code: str
    substitute: bool
    status: str
    available_from: date
    days_late: int
    quantity: int
    free: int
    allocated_here: int
    used: bool
    why: str
    withdraw_reason: str | None = None


@dataclass(frozen=True)
class Coverage:
    requirement_id: str
    item_code: str
    status: str
    priority: int
    needed_by: date
    quantity: int
    approved: int
    proposed: int
    open: int
    summary: str
    allocations: list[Placed] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    shortfall: Recorded | None = None


def explain(
    need: Need,
    offers: Sequence[Offer],
    placed: Sequence[Placed],
    others: Mapping[str, Need],
    rejected: frozenset[tuple[str, str]],
    items: ItemGraph,
    *,
    lead_days: int,
    shortfall: Recorded | None = None,
) -> Coverage:
    """`offers`: the pledges of the need's family; `placed`: their live allocations;
    `others`: the requirements those allocations serve."""
    mine = sorted((p for p in placed if p.requirement_id == need.id), key=lambda p: p.allocation_id)
    approved = sum(p.quantity for p in mine if p.approved)
    proposed = sum(p.quantity for p in mine if not p.approved)
    open_quantity = max(0, need.quantity - approved - proposed)
    used_by: dict[str, list[Placed]] = {}
    for allocation in placed:
        used_by.setdefault(allocation.pledge_id, []).append(allocation)
    candidates = [
        _candidate(
            need, offer, used_by.get(offer.id, []), others, rejected, open_quantity, lead_days
        )
        for offer in sorted(offers, key=lambda o: o.id)
        if items.compatible(need.item_code, offer.item_code)
    ]
    return Coverage(
        requirement_id=need.id,
        item_code=need.item_code,
        status=need.status,
        priority=need.priority,
        needed_by=need.needed_by,
        quantity=need.quantity,
        approved=approved,
        proposed=proposed,
        open=open_quantity,
        summary=_summary(need, approved, proposed, open_quantity, candidates),
        allocations=mine,
        candidates=candidates,
        shortfall=shortfall,
    )


def _summary(
    need: Need, approved: int, proposed: int, open_quantity: int, candidates: list[Candidate]
) -> str:
    if need.status == "submitted":
        return "not endorsed yet: only requirements the forum endorsed are matched"
    if need.status in ("cancelled", "fulfilled"):
        return f"{need.status}: no longer matched"
    share = f"{approved} approved and {proposed} proposed of {need.quantity}"
    if open_quantity == 0:
        return f"covered: {share}"
    if not any(c.status == "confirmed" for c in candidates):
        return f"{share}; {open_quantity} short: no confirmed pledge of the item or a substitute"
    return f"{share}; {open_quantity} short: the confirmed pledges that fit are allocated elsewhere"


def _candidate(
    need: Need,
    offer: Offer,
    allocations: list[Placed],
    others: Mapping[str, Need],
    rejected: frozenset[tuple[str, str]],
    open_quantity: int,
    lead_days: int,
) -> Candidate:
    here = sum(a.quantity for a in allocations if a.requirement_id == need.id)
    free = max(0, offer.quantity - sum(a.quantity for a in allocations))
    late = days_late(offer.available_from, need.needed_by, lead_days)
    timing = "on time" if late == 0 else f"{late} days late"
    if here:
        why = f"used: {here} allocated here ({timing})"
    elif offer.status == "announced":
        why = "not confirmed by the forum yet: only confirmed pledges are matched"
    elif offer.status == "withdrawn":
        why = "withdrawn by the donor"
    elif (need.id, offer.id) in rejected:
        why = "a planner rejected this pairing"
    elif need.status != "endorsed":
        why = "not considered: the requirement is not open for matching"
    elif free == 0:
        why = "fully allocated to " + _takers(allocations, others)
    elif open_quantity == 0:
        why = f"not needed: the requirement is covered ({free} still free)"
    else:
        why = f"{free} free and not yet planned (each change re-plans; POST /plan/run re-plans all)"
    return Candidate(
        pledge_id=offer.id,
        donor=offer.donor,
        item_code=offer.item_code,
        substitute=offer.item_code != need.item_code,
        status=offer.status,
        available_from=offer.available_from,
        days_late=late,
        quantity=offer.quantity,
        free=free,
        allocated_here=here,
        used=here > 0,
        why=why,
        # The donor's own words, apart from `why`: not every reader may see them.
        withdraw_reason=(offer.status_reason or None) if offer.status == "withdrawn" else None,
    )


def _takers(allocations: list[Placed], others: Mapping[str, Need]) -> str:
    def describe(a: Placed) -> str:
        other = others.get(a.requirement_id)
        priority = f"priority {other.priority}, " if other else ""
        state = "approved" if a.approved else "proposed"
        return f"{a.requirement_id} ({priority}{a.quantity} {state})"

    ranked = sorted(
        allocations,
        key=lambda a: (others[a.requirement_id].priority if a.requirement_id in others else 9,
                       a.requirement_id),
    )  # fmt: skip
    named = ", ".join(describe(a) for a in ranked[:LISTED])
    more = len(ranked) - LISTED
    return named + (f" and {more} more" if more > 0 else "")
