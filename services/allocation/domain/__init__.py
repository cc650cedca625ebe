"""The allocation service's pure core: the matcher, the planner, the Allocation aggregate and the
coverage explanation (no I/O; the solver is pure computation)."""

from services.allocation.domain.allocation import Allocation
from services.allocation.domain.coverage import Candidate, Coverage, explain
from services.allocation.domain.items import ItemGraph
from services.allocation.domain.logistics import HubRule, days_late, handover_by
from services.allocation.domain.matcher import Match, match
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
from services.allocation.domain.planner import Planner

__all__ = [
    "Allocation",
    "Cancellation",
    "Candidate",
    "Coverage",
    "FamilyState",
    "HubRule",
    "ItemGraph",
    "Match",
    "Need",
    "Offer",
    "Placed",
    "Plan",
    "Planner",
    "Policy",
    "Proposal",
    "Recorded",
    "Shortfall",
    "days_late",
    "explain",
    "handover_by",
    "match",
]
