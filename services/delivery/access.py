"""Who may do what in the delivery service: one named rule per endpoint (and per milestone), and
who sees how much of a shipment."""

from __future__ import annotations

from services.delivery.domain import Shipment
from shared.auth import (
    AccessPolicy,
    Principal,
    Role,
    Rule,
    Scope,
    require_own_hub,
    require_own_nation,
)
from shared.auth.policy import rule
from shared.auth.visibility import Resource, roles_seeing
from shared.domain import Forbidden
from shared.web.dead_letters import DEAD_LETTER_RULES

# The roles that see some shipments (shared.auth.visibility): observers and the forum see
# aggregates only.
_READERS = roles_seeing(Resource.SHIPMENT)

POLICY = AccessPolicy(
    "delivery",
    {
        "shipments.list": rule(
            *_READERS,
            description="List shipments (donors: their own); routes, carriers and ETAs by role",
        ),
        "shipments.summary": rule(
            *Role, description="Shipments and quantities per hub and status (aggregates)"
        ),
        "shipments.read": rule(
            *_READERS,
            description="One shipment (donors: their own); routes, carriers and ETAs by role",
            scope=Scope.OWN_NATION,
        ),
        "shipments.dispatch": rule(
            Role.DONOR,
            Role.PLANNER,
            description="Record dispatch: the shipment's donor, or a planner",
            scope=Scope.OWN_NATION,
        ),
        "shipments.arrive": rule(
            Role.HUB, description="Record arrival at the hub", scope=Scope.OWN_HUB
        ),
        "shipments.inspect": rule(
            Role.HUB, description="Record the inspection (passed or held)", scope=Scope.OWN_HUB
        ),
        "shipments.depart": rule(
            Role.HUB, description="Record departure from the hub", scope=Scope.OWN_HUB
        ),
        "shipments.handover": rule(
            Role.HUB, description="Record the handover at the border", scope=Scope.OWN_HUB
        ),
        "shipments.receive": rule(Role.RECIPIENT, description="Confirm receipt"),
        "shipments.delay": rule(
            Role.HUB,
            Role.PLANNER,
            description="Record a delay (hub operators: their hub)",
            scope=Scope.OWN_HUB,
        ),
        "shipments.report_loss": rule(
            Role.HUB,
            Role.PLANNER,
            description="Record a loss (hub operators: their hub)",
            scope=Scope.OWN_HUB,
        ),
        "milestones.batch": rule(
            Role.DONOR,
            Role.HUB,
            Role.PLANNER,
            Role.RECIPIENT,
            description="Upload many milestones; each row is checked against its milestone's rule",
        ),
        **DEAD_LETTER_RULES,
    },
)

# The rule each milestone (single route or batch row) is checked against.
MILESTONE_RULES = {
    "dispatch": "shipments.dispatch",
    "arrive": "shipments.arrive",
    "inspect": "shipments.inspect",
    "depart": "shipments.depart",
    "handover": "shipments.handover",
    "receive": "shipments.receive",
    "delay": "shipments.delay",
    "report_loss": "shipments.report_loss",
}


def authorize_on(principal: Principal, name: str, shipment: Shipment) -> None:
    """The rule's roles and its scope on this shipment; planners are never scoped."""
    checked: Rule = POLICY[name]
    if not checked.allows(principal.roles):
        allowed = ", ".join(sorted(checked.roles))
        raise Forbidden(f"This needs one of the roles: {allowed}.", kind="forbidden-role")
    if checked.scope is Scope.OWN_HUB and principal.has(Role.HUB):
        require_own_hub(principal, shipment.hub, unless=(Role.PLANNER,))
    elif checked.scope is Scope.OWN_NATION and principal.has(Role.DONOR):
        require_own_nation(principal, shipment.donor, unless=(Role.PLANNER,))


def only_own_nation(principal: Principal) -> str | None:
    """The donor filter for callers who see nothing but their own nation's shipments (so that
    a page and its total count only those)."""
    others = (Role.PLANNER, Role.RECIPIENT, Role.HUB, Role.FORUM, Role.ADMIN)
    if principal.has(Role.DONOR) and not principal.has(*others):
        return principal.nation or ""
    return None
