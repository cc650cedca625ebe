"""The projection service's access rules: every read needs a valid token of any role; what a
role sees of each answer is narrowed by the visibility table (`shared.auth.visibility`);
rebuilding is for admins."""

from __future__ import annotations

from shared.auth import AccessPolicy, Role
from shared.auth.policy import READERS, rule
from shared.auth.visibility import Resource, roles_seeing
from shared.web.dead_letters import DEAD_LETTER_RULES

POLICY = AccessPolicy(
    "projection",
    {
        "board.read": rule(*READERS, description="Requirement board, one requirement, CSV"),
        "donors.ledger": rule(*READERS, description="A donor nation's ledger"),
        "capabilities.gaps": rule(*READERS, description="Need vs pledged vs delivered"),
        "decisions.read": rule(
            *READERS,
            description="Forum decisions and their execution (details per visibility rules)",
        ),
        "changes.read": rule(
            *READERS,
            description="What changed between two days (details per visibility rules)",
        ),
        "hubs.read": rule(*READERS, description="A hub's board (details per visibility rules)"),
        "shipments.timeline": rule(
            *roles_seeing(Resource.SHIPMENT),
            description="A shipment's milestones (as the visibility table allows)",
        ),
        "audit.read": rule(*READERS, description="Every event of a stream"),
        "events.stream": rule(*READERS, description="Live Server-Sent Events of every event"),
        "admin.status": rule(*READERS, description="Lag, events applied, rebuild progress"),
        "admin.rebuild": rule(Role.ADMIN, description="Replay every topic into fresh tables"),
        **DEAD_LETTER_RULES,
    },
)
