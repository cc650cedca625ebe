"""Planning one item family: keep commitments, re-match the rest, report what stays short (pure).

One step, whatever triggered it (a new or changed requirement or pledge, a rejection, a lost
shipment, `POST /plan/run`):

1. Retire live allocations whose requirement was cancelled or whose pledge was withdrawn (any
   status), proposals of fulfilled requirements, and allocations with nothing left to deliver
   (all of it lost in transit).
2. Approved allocations are commitments: they stay as they are unless their pledge or
   requirement no longer holds them (pledge reduced, requirement amended down). Then the fewest
   are cut: on a pledge, those of the lowest priority (then latest needed-by) first; on a
   requirement, those from the latest-available pledge first. A cut allocation is cancelled
   with the reason and, if some of it remains, replaced by a new allocation of the rest that
   keeps its approval (there is no "reduced" event: shrinking = cancel + replacement).
3. Proposed (not yet approved) allocations are not commitments: the family's free quantity and
   open need are matched afresh (`matcher.match`), preferring the pairs already proposed. A
   proposal the new plan repeats exactly (quantity, hub, handover-by) stays; the others are
   cancelled ("re-planned") and the new ones proposed.
4. Every endorsed requirement left with open need gets `shortfall.recorded` — unless the same
   open quantity and reason were recorded last time; one that was short and is now covered (or
   closed) gets a shortfall of 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from services.allocation.domain.items import ItemGraph
from services.allocation.domain.logistics import HubRule, days_late, handover_by
from services.allocation.domain.matcher import Demand, Supply, match
from services.allocation.domain.model import (
    Cancellation,
    FamilyState,
    Need,
    Offer,
    Placed,
    Plan,
    Policy,
    Proposal,
    Recorded,
    Shortfall,
)


class Planner:
    def __init__(self, items: ItemGraph, hubs: HubRule, policy: Policy | None = None) -> None:
        self.items = items
        self.hubs = hubs
        self.policy = policy or Policy()

    # -- one family ------------------------------------------------------------------------

    def plan(self, state: FamilyState, cause: str) -> Plan:
        needs = {n.id: n for n in state.needs}
        offers = {o.id: o for o in state.offers}
        cancellations: list[Cancellation] = []
        proposals: list[Proposal] = []
        live: list[Placed] = []
        for placed in sorted(state.placed, key=lambda p: p.allocation_id):
            reason = _retire_reason(placed, needs, offers, cause)
            if reason:
                cancellations.append(Cancellation(placed.allocation_id, reason))
            else:
                live.append(placed)

        kept = self._fit_commitments([p for p in live if p.approved], needs, offers, cause)
        cancellations += kept.cancellations
        proposals += kept.proposals

        proposed = [p for p in live if not p.approved]
        rematch = self._rematch(state, kept.quantities, proposed, needs, offers, cause)
        cancellations += rematch.cancellations
        proposals += rematch.proposals

        covered: dict[str, int] = defaultdict(int)
        for placed in live:
            if placed.approved and kept.quantities[placed.allocation_id] == placed.quantity:
                covered[placed.requirement_id] += placed.quantity
        for proposal in rematch.proposals + kept.proposals:
            covered[proposal.requirement_id] += proposal.quantity
        for placed in rematch.held:
            covered[placed.requirement_id] += placed.quantity
        shortfalls = self._shortfalls(state, covered)
        return Plan(
            sorted(cancellations, key=lambda c: c.allocation_id),
            sorted(proposals, key=lambda p: (p.requirement_id, p.pledge_id, p.quantity)),
            shortfalls,
        )

    # -- step 2: commitments ---------------------------------------------------------------

    def _fit_commitments(
        self,
        approved: Sequence[Placed],
        needs: Mapping[str, Need],
        offers: Mapping[str, Offer],
        cause: str,
    ) -> _Commitments:
        quantity = {p.allocation_id: p.quantity for p in approved}
        why: dict[str, str] = {}

        def cut(group: list[Placed], capacity: int, because: str) -> None:
            over = sum(quantity[p.allocation_id] for p in group) - capacity
            for placed in group:
                if over <= 0:
                    return
                amount = min(over, quantity[placed.allocation_id])
                if amount:
                    quantity[placed.allocation_id] -= amount
                    over -= amount
                    why.setdefault(placed.allocation_id, because)

        by_offer = _group(approved, lambda p: p.pledge_id)
        for pledge_id in sorted(by_offer):
            offer = offers[pledge_id]
            lowest_priority_first = sorted(
                by_offer[pledge_id],
                key=lambda p: (
                    -needs[p.requirement_id].priority,
                    -needs[p.requirement_id].needed_by.toordinal(),
                    _descending(p.allocation_id),
                ),
            )
            cut(
                lowest_priority_first,
                offer.quantity,
                f"pledge {pledge_id} now holds {offer.quantity}",
            )
        by_need = _group(approved, lambda p: p.requirement_id)
        for requirement_id in sorted(by_need):
            need = needs[requirement_id]
            if need.status != "endorsed":
                continue
            latest_pledge_first = sorted(
                by_need[requirement_id],
                key=lambda p: (
                    -offers[p.pledge_id].available_from.toordinal(),
                    _descending(p.allocation_id),
                ),
            )
            cut(
                latest_pledge_first,
                need.quantity,
                f"requirement {requirement_id} now needs {need.quantity}",
            )

        result = _Commitments(quantities=quantity)
        for placed in approved:
            left = quantity[placed.allocation_id]
            if left == placed.quantity:
                continue
            if left == 0:
                reason = f"{cause}: {why[placed.allocation_id]}, so this commitment is released"
                result.cancellations.append(Cancellation(placed.allocation_id, reason))
                continue
            reason = (
                f"{cause}: {why[placed.allocation_id]}, so it shrinks from {placed.quantity} "
                f"to {left} (a new approved allocation replaces it)"
            )
            result.cancellations.append(Cancellation(placed.allocation_id, reason))
            need, offer = needs[placed.requirement_id], offers[placed.pledge_id]
            result.proposals.append(
                self._proposal(need, offer, left, replaces=placed, approved_by=placed.approved_by)
            )
        return result

    # -- step 3: matching ------------------------------------------------------------------

    def _rematch(
        self,
        state: FamilyState,
        committed: Mapping[str, int],
        proposed: Sequence[Placed],
        needs: Mapping[str, Need],
        offers: Mapping[str, Offer],
        cause: str,
    ) -> _Rematch:
        on_need: dict[str, int] = defaultdict(int)
        on_offer: dict[str, int] = defaultdict(int)
        for placed in state.placed:
            if placed.allocation_id in committed:
                on_need[placed.requirement_id] += committed[placed.allocation_id]
                on_offer[placed.pledge_id] += committed[placed.allocation_id]
        demands = [
            Demand(n.id, n.item_code, n.quantity - on_need[n.id], n.priority, n.needed_by)
            for n in needs.values()
            if n.status == "endorsed"
        ]
        supplies = [
            Supply(o.id, o.item_code, o.quantity - on_offer[o.id], o.available_from)
            for o in offers.values()
            if o.status == "confirmed"
        ]
        matches = match(
            demands,
            supplies,
            self.items.compatible,
            lead_days=self.policy.lead_days,
            excluded=state.rejected,
            incumbents=_quantities(proposed),
        )
        waiting = _group(proposed, lambda p: p.pair)
        result = _Rematch()
        for found in matches:
            need, offer = needs[found.requirement_id], offers[found.pledge_id]
            proposal = self._proposal(need, offer, found.quantity)
            pair = (found.requirement_id, found.pledge_id)
            same = next((p for p in waiting.get(pair, []) if _same_terms(p, proposal)), None)
            if same is not None:
                waiting[pair].remove(same)
                result.held.append(same)
            else:
                result.proposals.append(proposal)
        for group in waiting.values():
            for placed in group:
                result.cancellations.append(
                    Cancellation(placed.allocation_id, f"re-planned after {cause}")
                )
        return result

    def _proposal(
        self,
        need: Need,
        offer: Offer,
        quantity: int,
        *,
        replaces: Placed | None = None,
        approved_by: str | None = None,
    ) -> Proposal:
        lead = self.policy.lead_days
        hub = self.hubs.choose(self.items.capability(offer.item_code))
        due = handover_by(offer.available_from, need.needed_by, lead)
        late = days_late(offer.available_from, need.needed_by, lead)
        substitute = " (declared substitute)" if offer.item_code != need.item_code else ""
        donor = f" from {offer.donor}" if offer.donor else ""
        timing = "on time" if late == 0 else f"{late} days late"
        rationale = (
            f"priority {need.priority} need for {need.item_code} by {need.needed_by}: "
            f"{quantity} of pledge {offer.id}{donor}, {offer.item_code}{substitute}, available "
            f"{offer.available_from} ({timing}); hub {hub.hub} ({hub.why}); handover by {due}"
        )
        if replaces is not None:
            rationale = f"replaces {replaces.allocation_id} ({replaces.quantity}); {rationale}"
        return Proposal(
            requirement_id=need.id,
            pledge_id=offer.id,
            item_code=offer.item_code,
            quantity=quantity,
            hub=hub.hub,
            handover_by=due,
            rationale=rationale,
            replaces=replaces.allocation_id if replaces else None,
            approved_by=approved_by,
            endorsed_by_decision=need.decision_id,
            confirmed_by_decision=offer.decision_id,
        )

    # -- step 4: shortfalls ----------------------------------------------------------------

    def _shortfalls(self, state: FamilyState, covered: Mapping[str, int]) -> list[Shortfall]:
        result = []
        for need in sorted(state.needs, key=lambda n: n.id):
            before = state.shortfalls.get(need.id)
            if need.status != "endorsed":
                if before is not None and before.open_quantity > 0:
                    result.append(Shortfall(need.id, 0, f"requirement {need.status}"))
                continue
            open_quantity = need.quantity - covered.get(need.id, 0)
            if open_quantity <= 0:
                if before is not None and before.open_quantity > 0:
                    result.append(Shortfall(need.id, 0, "covered"))
                continue
            reason = self._shortfall_reason(need, state, covered.get(need.id, 0))
            if before != Recorded(open_quantity, reason):
                result.append(Shortfall(need.id, open_quantity, reason))
        return result

    def _shortfall_reason(self, need: Need, state: FamilyState, covered: int) -> str:
        usable = [
            o
            for o in state.offers
            if o.status == "confirmed"
            and self.items.compatible(need.item_code, o.item_code)
            and (need.id, o.id) not in state.rejected
        ]
        share = f"{covered} of {need.quantity} covered: "
        if not usable:
            return share + f"no confirmed pledge of {need.item_code} or a declared substitute"
        return share + (
            f"the confirmed pledges of {need.item_code} and its substitutes are all allocated "
            "(to needs of higher or equal priority, or to approved commitments)"
        )

    # -- whole plan ------------------------------------------------------------------------

    def families(
        self,
        needs: Iterable[Need],
        offers: Iterable[Offer],
        placed: Iterable[Placed] = (),
        rejected: Iterable[tuple[str, str]] = (),
        shortfalls: Mapping[str, Recorded] | None = None,
    ) -> list[tuple[str, FamilyState]]:
        """Split a whole state into item families, in the order of their keys."""
        need_list, offer_list = list(needs), list(offers)
        family_of_need = {n.id: self.items.family_key(n.item_code) for n in need_list}
        recorded = shortfalls or {}
        groups: dict[str, _Family] = defaultdict(_Family)
        for need in need_list:
            family = groups[family_of_need[need.id]]
            family.needs.append(need)
            if need.id in recorded:
                family.shortfalls[need.id] = recorded[need.id]
        for offer in offer_list:
            groups[self.items.family_key(offer.item_code)].offers.append(offer)
        for allocation in placed:
            groups[self.items.family_key(allocation.item_code)].placed.append(allocation)
        for pair in rejected:
            if pair[0] in family_of_need:
                groups[family_of_need[pair[0]]].rejected.add(pair)
        return [(key, groups[key].freeze()) for key in sorted(groups)]

    def plan_all(self, states: Iterable[tuple[str, FamilyState]], cause: str) -> Plan:
        plan = Plan()
        for _key, state in states:
            plan = plan.merge(self.plan(state, cause))
        return plan


class _Commitments:
    def __init__(self, quantities: dict[str, int]) -> None:
        self.quantities = quantities  # approved allocation id -> quantity it keeps
        self.cancellations: list[Cancellation] = []
        self.proposals: list[Proposal] = []


class _Rematch:
    def __init__(self) -> None:
        self.held: list[Placed] = []  # proposals the new plan repeats
        self.cancellations: list[Cancellation] = []
        self.proposals: list[Proposal] = []


class _Family:
    def __init__(self) -> None:
        self.needs: list[Need] = []
        self.offers: list[Offer] = []
        self.placed: list[Placed] = []
        self.rejected: set[tuple[str, str]] = set()
        self.shortfalls: dict[str, Recorded] = {}

    def freeze(self) -> FamilyState:
        return FamilyState(
            self.needs, self.offers, self.placed, frozenset(self.rejected), self.shortfalls
        )


def _retire_reason(
    placed: Placed, needs: Mapping[str, Need], offers: Mapping[str, Offer], cause: str
) -> str | None:
    need, offer = needs.get(placed.requirement_id), offers.get(placed.pledge_id)
    if need is None or offer is None:
        raise ValueError(f"family state lacks the requirement or pledge of {placed.allocation_id}")
    if need.status == "cancelled":
        return f"requirement {need.id} cancelled: {need.status_reason}".rstrip(": ")
    if offer.status == "withdrawn":
        return f"pledge {offer.id} withdrawn: {offer.status_reason}".rstrip(": ")
    if offer.status != "confirmed":
        return f"pledge {offer.id} is not confirmed"
    if need.status == "fulfilled" and not placed.approved:
        return f"requirement {need.id} fulfilled"
    if placed.quantity <= 0:
        return f"{cause}: nothing of it is left to deliver"
    return None


K = TypeVar("K")
T = TypeVar("T")


def _group(values: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = defaultdict(list)
    for value in values:
        groups[key(value)].append(value)
    return groups


def _same_terms(placed: Placed, proposal: Proposal) -> bool:
    """Whether a standing proposal already says what the new plan says (then it stays)."""
    return (
        placed.quantity == proposal.quantity
        and placed.hub in (None, proposal.hub)
        and placed.handover_by in (None, proposal.handover_by)
    )


def _quantities(placed: Iterable[Placed]) -> dict[tuple[str, str], int]:
    result: dict[tuple[str, str], int] = defaultdict(int)
    for allocation in placed:
        result[allocation.pair] += allocation.quantity
    return result


def _descending(text: str) -> tuple[int, ...]:
    """A sort key ordering strings in reverse, for a deterministic last tie-break."""
    return (*(-ord(c) for c in text), 1)
