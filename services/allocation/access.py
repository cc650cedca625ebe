"""Who may call which endpoint of the allocation service (one named rule per route)."""

from __future__ import annotations

from shared.auth import AccessPolicy, Role
from shared.auth.policy import READERS, rule
from shared.web.dead_letters import DEAD_LETTER_RULES

POLICY = AccessPolicy(
    "allocation",
    {
        "plan.run": rule(Role.PLANNER, description="Re-plan every open item family"),
        "allocations.read": rule(*READERS, description="List and read allocations"),
        "allocations.approve": rule(Role.PLANNER, description="Approve a proposed allocation"),
        "allocations.reject": rule(Role.PLANNER, description="Reject a proposed allocation"),
        "coverage.read": rule(*READERS, description="Explain a requirement's coverage"),
        **DEAD_LETTER_RULES,
    },
)
