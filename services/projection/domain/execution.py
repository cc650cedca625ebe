"""A forum decision followed to the border (pure: the caller loads the rows).

For every requirement the decision endorsed and every pledge it confirmed (a "line"): the
quantities that reached each step — confirmed → allocated → dispatched → at hub → handed over
→ received —, the days from the decision to the first of each, and what is stuck and why.

An allocation or shipment belongs to a line when its lineage names the decision
(`endorsed_by_decision` for a requirement, `confirmed_by_decision` for a pledge). Lineage
unknown (null: an event stored before lineage existed) falls back on the allocation's lineage
for a shipment, then on the line's own decision: a requirement is endorsed and a pledge
confirmed at most once, so that is the decision it executes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.projection.domain.model import (
    ALLOCATION_LIVE,
    HANDED_OVER,
    MOVING,
    Allocation,
    Decision,
    Pledge,
    Requirement,
    Shipment,
)

# The steps of the funnel after "confirmed", each with the time a shipment or allocation first
# reached it.
STEPS = ("allocated", "dispatched", "at_hub", "handed_over", "received")
FIGURES = ("confirmed", "proposed", *STEPS, "lost")
STUCK = ("no_allocation", "shortfall", "held", "delayed", "lost")
# A shipment still on its way (a delay matters only then).
UNDERWAY = MOVING | {"planned"}
# The requirement and pledge states that ask for nothing more.
CLOSED = frozenset({"cancelled", "fulfilled", "withdrawn"})


def shipment_stuck(s: Shipment) -> list[str]:
    """What holds shipment `s` up: held at inspection, delayed on its way, units lost."""
    states = []
    if s.status == "held":
        states.append("held")
    if s.delayed and s.status in UNDERWAY:
        states.append("delayed")
    if s.lost_quantity > 0:
        states.append("lost")
    return states


def days_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 86400, 2)


@dataclass(frozen=True)
class _Line:
    kind: str  # requirement | pledge
    id: str
    allocations: list[Allocation]
    shipments: list[Shipment]


def _first(times: Iterable[datetime | None]) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def _funnel(
    allocations: Sequence[Allocation], shipments: Sequence[Shipment], since: datetime | None
) -> dict[str, Any]:
    """Quantities at each step and days from `since` to the first of each."""
    live = [s for s in shipments if s.status != "cancelled"]
    dispatched = [s for s in live if s.dispatched_at is not None]
    at_hub = [s for s in live if s.arrived_at is not None]
    handed = [s for s in live if s.status in HANDED_OVER]
    received = [s for s in live if s.received_at is not None]
    approved = [a for a in allocations if a.status == "approved"]
    figures: dict[str, Any] = {
        "proposed": sum(a.quantity for a in allocations if a.status == "proposed"),
        "allocated": sum(a.quantity for a in approved),
        "dispatched": sum(s.quantity for s in dispatched),
        "at_hub": sum(s.quantity for s in at_hub),
        "handed_over": sum(s.received_good for s in handed),
        "received": sum(s.received_good for s in received),
        "lost": sum(s.lost_quantity for s in live),
    }
    firsts = {
        "allocated": _first(a.proposed_at for a in allocations if a.status in ALLOCATION_LIVE),
        "dispatched": _first(s.dispatched_at for s in dispatched),
        "at_hub": _first(s.arrived_at for s in at_hub),
        "handed_over": _first(s.handed_over_at for s in handed),
        "received": _first(s.received_at for s in received),
    }
    for step in STEPS:
        figures[f"days_to_{step}"] = days_between(since, firsts[step])
    return figures


def _stuck_counts(shipments: Sequence[Shipment]) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for state in ("held", "delayed", "lost"):
        hit = [s for s in shipments if state in shipment_stuck(s)]
        counts[f"{state}_shipments"] = len(hit)
    return counts


class _Attribution:
    """Which decision each allocation and shipment executes, on one side (requirement or pledge)."""

    def __init__(
        self,
        lineage: Callable[[Allocation | Shipment], str | None],
        own: Mapping[str, str | None],  # the line's own decision, by line id
        line_of: Callable[[Allocation | Shipment], str],
        allocations: Mapping[str, Allocation],
    ) -> None:
        self.lineage, self.own, self.line_of, self.allocations = lineage, own, line_of, allocations

    def allocation(self, a: Allocation) -> str | None:
        return self.lineage(a) or self.own.get(self.line_of(a))

    def shipment(self, s: Shipment) -> str | None:
        known = self.lineage(s)
        if known:
            return known
        allocation = self.allocations.get(s.allocation_id)
        if allocation is not None and self.lineage(allocation):
            return self.lineage(allocation)
        return self.own.get(self.line_of(s))


def _lines(
    kind: str,
    decision_id: str,
    attribution: _Attribution,
    allocations: Sequence[Allocation],
    shipments: Sequence[Shipment],
) -> list[_Line]:
    """One line per requirement (or pledge) of the decision, with what executes it."""
    lines = {key: _Line(kind, key, [], []) for key in sorted(attribution.own)}
    for a in allocations:
        line = lines.get(attribution.line_of(a))
        if line is not None and attribution.allocation(a) == decision_id:
            line.allocations.append(a)
    for s in shipments:
        line = lines.get(attribution.line_of(s))
        if line is not None and attribution.shipment(s) == decision_id:
            line.shipments.append(s)
    return list(lines.values())


def trace(
    decision: Decision,
    requirements: Sequence[Requirement],
    pledges: Sequence[Pledge],
    allocations: Sequence[Allocation],
    shipments: Sequence[Shipment],
    reasons: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The decision's execution: `lines` (one per requirement endorsed and pledge confirmed:
    figures, days, stuck states), totals per side, stuck counts, and `shipments` (each
    shipment executing it, with why it is stuck: `reasons` by shipment id, from its events)."""
    by_allocation = {a.allocation_id: a for a in allocations}
    since = decision.recorded_at
    requirement_side = _Attribution(
        lambda x: x.endorsed_by_decision,
        {r.requirement_id: r.decision_id for r in requirements},
        lambda x: x.requirement_id,
        by_allocation,
    )
    pledge_side = _Attribution(
        lambda x: x.confirmed_by_decision,
        {p.pledge_id: p.decision_id for p in pledges},
        lambda x: x.pledge_id,
        by_allocation,
    )
    did = decision.decision_id
    req_lines = _lines("requirement", did, requirement_side, allocations, shipments)
    pledge_lines = _lines("pledge", did, pledge_side, allocations, shipments)
    req_rows = {r.requirement_id: r for r in requirements}
    pledge_rows = {p.pledge_id: p for p in pledges}
    lines = [_requirement_line(line, req_rows[line.id], since) for line in req_lines]
    lines += [_pledge_line(line, pledge_rows[line.id], since) for line in pledge_lines]
    executing: dict[str, Shipment] = {}
    for line in req_lines + pledge_lines:
        executing.update({s.shipment_id: s for s in line.shipments if s.status != "cancelled"})
    return {
        "decision_id": did,
        "meeting_date": decision.meeting_date,
        "reference": decision.reference,
        "recorded_at": since,
        "requirements_endorsed": len(req_lines),
        "pledges_confirmed": len(pledge_lines),
        "requirements": _totals([x for x in lines if x["kind"] == "requirement"]),
        "pledges": _totals([x for x in lines if x["kind"] == "pledge"]),
        "stuck": _stuck_summary(lines, list(executing.values())),
        "lines": lines,
        "shipments": [
            _shipment_entry(executing[k], (reasons or {}).get(k, {})) for k in sorted(executing)
        ],
    }


def _progress(line: _Line, status: str, since: datetime | None, short: int) -> dict[str, Any]:
    """A line's figures, days and stuck states (`short`: its open shortfall)."""
    figures = _funnel(line.allocations, line.shipments, since)
    stuck = []
    if status not in CLOSED:
        if not _anything_moving(figures):
            stuck.append("no_allocation")
        elif short > 0:
            stuck.append("shortfall")
    counts = _stuck_counts([s for s in line.shipments if s.status != "cancelled"])
    stuck += [state for state in ("held", "delayed", "lost") if counts[f"{state}_shipments"]]
    return {**figures, **counts, "open_shortfall": short, "stuck": stuck}


def _requirement_line(line: _Line, r: Requirement, since: datetime | None) -> dict[str, Any]:
    short = r.open_shortfall or 0
    return {
        "kind": "requirement",
        "subject": r.requirement_id,
        "item_code": r.item_code,
        "unit": r.unit,
        "status": r.status,
        "priority": r.priority,
        "needed_by": r.needed_by,
        "confirmed": r.requested,
        **_progress(line, r.status, since, short),
        # Why it is short (the planner's words), while it is.
        "shortfall_reason": r.shortfall_reason if short > 0 else None,
    }


def _pledge_line(line: _Line, p: Pledge, since: datetime | None) -> dict[str, Any]:
    return {
        "kind": "pledge",
        "subject": p.pledge_id,
        "item_code": p.item_code,
        "unit": p.unit,
        "status": p.status,
        "donor": p.donor,
        "confirmed": p.quantity,
        **_progress(line, p.status, since, 0),
        "shortfall_reason": None,
    }


def _anything_moving(figures: Mapping[str, Any]) -> bool:
    return bool(figures["proposed"] or figures["allocated"] or figures["dispatched"])


def _totals(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sums over the lines still open or done (cancelled requirements and withdrawn pledges
    ask for nothing), and the days to each step's first over all lines."""
    counted = [x for x in lines if x["status"] not in ("cancelled", "withdrawn")]
    totals: dict[str, Any] = {f: sum(x[f] for x in counted) for f in FIGURES}
    totals["open_shortfall"] = sum(x["open_shortfall"] for x in counted)
    for step in STEPS:
        days = [x[f"days_to_{step}"] for x in lines if x[f"days_to_{step}"] is not None]
        totals[f"days_to_{step}"] = min(days) if days else None
    confirmed = totals["confirmed"]
    totals["share_handed_over"] = round(totals["handed_over"] / confirmed, 4) if confirmed else None
    return totals


def _stuck_summary(
    lines: Sequence[Mapping[str, Any]], shipments: Sequence[Shipment]
) -> dict[str, Any]:
    """How much is stuck in each state: lines without allocation or short, shipments held,
    delayed or with losses (figures only: which shipments is in `shipments`)."""
    no_allocation = [x for x in lines if "no_allocation" in x["stuck"]]
    short = [x for x in lines if "shortfall" in x["stuck"]]
    summary: dict[str, Any] = {
        "no_allocation": {
            "requirements": sum(x["kind"] == "requirement" for x in no_allocation),
            "pledges": sum(x["kind"] == "pledge" for x in no_allocation),
            "quantity": sum(x["confirmed"] for x in no_allocation),
        },
        "shortfall": {
            "requirements": len(short),
            "quantity": sum(x["open_shortfall"] for x in short),
        },
    }
    for state in ("held", "delayed", "lost"):
        hit = [s for s in shipments if state in shipment_stuck(s)]
        quantity = (
            sum(s.lost_quantity for s in hit)
            if state == "lost"
            else sum(s.quantity - s.lost_quantity for s in hit)
        )
        summary[state] = {"shipments": len(hit), "quantity": quantity}
    return summary


def _shipment_entry(s: Shipment, reasons: Mapping[str, Any]) -> dict[str, Any]:
    """One shipment executing the decision. Field names are the visibility table's
    (`shared.auth.visibility.FIELD_GROUPS`): a viewer sees this entry only as it may see the
    shipment — a delay's ETA and reason, hold notes and loss reasons are hidden by name."""
    states = shipment_stuck(s)
    return {
        "shipment_id": s.shipment_id,
        "requirement_id": s.requirement_id,
        "pledge_id": s.pledge_id,
        "item_code": s.item_code,
        "donor": s.donor,
        "hub": s.hub,
        "status": s.status,
        "quantity": s.quantity,
        "received_good": s.received_good,
        "lost_quantity": s.lost_quantity,
        "held": "held" in states,
        "inspection_notes": reasons.get("inspection_notes") if "held" in states else None,
        "delayed": "delayed" in states,
        "new_eta": s.eta if "delayed" in states else None,
        "delay_reason": reasons.get("delay_reason") if "delayed" in states else None,
        "loss_reason": reasons.get("loss_reason") if "lost" in states else None,
    }


# What each kind of shipment event says about why the shipment is stuck (the latest counts).
REASON_EVENTS: dict[str, tuple[str, str]] = {
    "shipment.inspected": ("inspection_notes", "notes"),
    "shipment.delayed": ("delay_reason", "reason"),
    "shipment.lost": ("loss_reason", "reason"),
}


def stuck_reasons(
    events: Iterable[tuple[str, str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Why each shipment is stuck, from its events `(shipment id, type, data)` in order: the
    latest hold notes (of an inspection that held it), delay reason and loss reason."""
    out: dict[str, dict[str, Any]] = {}
    for shipment_id, event_type, data in events:
        field, key = REASON_EVENTS.get(event_type, ("", ""))
        if not field or (event_type == "shipment.inspected" and data.get("result") != "held"):
            continue
        out.setdefault(shipment_id, {})[field] = data.get(key)
    return out
