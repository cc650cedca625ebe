"""Builders for the allocation planner's unit and property tests (pure, no I/O)."""

from __future__ import annotations

from datetime import date

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
)
from shared.catalogue import base_items, hubs

# Substitutes in the base catalogue; ARM-LEO2A4 has none.
HE, HE_ER = "ART-155-HE", "ART-155-HE-ER"
PAC3, GEMT = "AD-PATRIOT-PAC3", "AD-PATRIOT-GEMT"
TANK = "ARM-LEO2A4"

EARLY = date(2025, 1, 1)
NEEDED = date(2025, 3, 1)  # with the default 7 lead days, pledges up to 2025-02-22 are on time


def planner(lead_days: int = 7) -> Planner:
    return Planner(ItemGraph(base_items().values()), HubRule(hubs().values()), Policy(lead_days))


def need(
    rid: str, quantity: int, priority: int = 2, item: str = HE, needed_by: date = NEEDED, **kw: str
) -> Need:
    return Need(rid, item, quantity, priority, needed_by, **kw)  # type: ignore[arg-type]


def offer(pid: str, quantity: int, item: str = HE, available: date = EARLY, **kw: str) -> Offer:
    return Offer(pid, item, quantity, available, **kw)  # type: ignore[arg-type]


def approved(aid: str, rid: str, pid: str, quantity: int, item: str = HE) -> Placed:
    return Placed(aid, rid, pid, item, quantity, approved_by="planner-1")


def proposed(aid: str, rid: str, pid: str, quantity: int, item: str = HE) -> Placed:
    return Placed(aid, rid, pid, item, quantity)


def pairs(plan: Plan) -> dict[tuple[str, str], int]:
    """The plan's proposals as {(requirement, pledge): quantity}."""
    result: dict[tuple[str, str], int] = {}
    for p in plan.proposals:
        result[(p.requirement_id, p.pledge_id)] = result.get((p.requirement_id, p.pledge_id), 0)
        result[(p.requirement_id, p.pledge_id)] += p.quantity
    return result


def state(
    needs: list[Need], offers: list[Offer], placed: list[Placed] | None = None, **kw: object
) -> FamilyState:
    return FamilyState(needs, offers, placed or [], **kw)  # type: ignore[arg-type]
