"""What changed between two days: the forum's meeting pack (pure; the lines are read from the
history tables by `queries.changes`).

A line is one fact, of a kind the forum follows, dated by its business time. Its `summary` is
written from the figures every reader sees (kind, quantity, item, nation, requirement, pledge,
decision), never from the fields the visibility table may hide (a shipment's id, its ETA, hub,
people, reasons): those travel in fields of their own, so that redaction removes them.
"""

from __future__ import annotations

from typing import Any

# The kind of line each event makes (events of other types make none).
KINDS: dict[str, str] = {
    "requirement.submitted": "need",
    "requirement.endorsed": "endorsement",
    "requirement.cancelled": "cancellation",
    "pledge.announced": "pledge",
    "pledge.confirmed": "confirmation",
    "pledge.reduced": "reduction",
    "pledge.withdrawn": "withdrawal",
    "decision.recorded": "decision",
    "allocation.approved": "allocation",
    "shortfall.recorded": "shortfall",
    "shipment.handed_over": "handover",
    "shipment.delayed": "slip",
    "shipment.lost": "loss",
    "shipment.cancelled": "shipment_cancelled",
}
SHIPMENT_KINDS = frozenset(k for t, k in KINDS.items() if t.startswith("shipment."))

# The columns of a line, in CSV order.
FIELDS = (
    "kind", "date", "at", "subject", "summary", "requirement_id", "pledge_id", "decision_id",
    "nation", "item_code", "quantity", "unit", "shipment_id", "hub", "new_eta",
    "shortfall_reason", "note",
)  # fmt: skip

# What a reader who may not see the shipment keeps of a shipment's line: the figures of the
# donor's ledger and the requirement's board.
AGGREGATE_FIELDS = (
    "kind", "date", "at", "subject", "summary", "requirement_id", "pledge_id", "nation",
    "item_code", "quantity", "unit",
)  # fmt: skip
MAX_DAYS = 3660  # ten years: the pledges on record go back to 2022


def _what(line: dict[str, Any]) -> str:
    unit = f" {line['unit']}" if line.get("unit") else ""
    return f"{line.get('quantity') or 0}{unit} of {line.get('item_code') or 'an item'}"


def summary(line: dict[str, Any]) -> str:
    """One sentence a meeting pack shows for the line."""
    kind, what = line["kind"], _what(line)
    requirement = line.get("requirement_id") or "a requirement"
    pledge = line.get("pledge_id") or "a pledge"
    nation = line.get("nation") or "a donor"
    decision = line.get("decision_id")
    by = f" by decision {decision}" if decision else ""
    texts = {
        "need": f"New need {requirement}: {what}",
        "endorsement": f"Need {requirement} endorsed{by}",
        "cancellation": f"Need {requirement} cancelled",
        "pledge": f"{nation} pledged {what} ({pledge})",
        "confirmation": f"{nation} confirmed pledge {pledge}{by}: {what}",
        "reduction": f"{nation} reduced pledge {pledge} to {what}",
        "withdrawal": f"{nation} withdrew pledge {pledge}",
        "decision": f"Forum decision {decision} recorded ({line.get('note') or 'no reference'})",
        "allocation": f"{what} from {nation} allocated to {requirement}",
        "shortfall": f"Shortfall on {requirement}: {line.get('quantity') or 0} still uncovered",
        "handover": f"{what} from {nation} handed over for {requirement}",
        "slip": f"A shipment of {what} from {nation} for {requirement} delayed",
        "loss": f"A shipment for {requirement} from {nation}: {what} lost",
        "shipment_cancelled": f"A shipment of {what} from {nation} for {requirement} cancelled",
    }
    return texts[kind]


def aggregate(line: dict[str, Any]) -> dict[str, Any]:
    """A shipment's line as a reader who may not see the shipment reads it: its figures under
    the requirement it serves."""
    kept = {k: line.get(k) for k in AGGREGATE_FIELDS}
    kept["subject"] = line.get("requirement_id")
    return kept
