"""Who may call which endpoint of the request service (DESIGN.md §4, §5): one rule per endpoint."""

from __future__ import annotations

from shared.auth import AccessPolicy, Role, Scope
from shared.auth.policy import READERS, rule
from shared.web.dead_letters import DEAD_LETTER_RULES

R = Role

POLICY = AccessPolicy(
    "request",
    {
        "requirement.submit": rule(R.RECIPIENT, description="State a need"),
        "requirement.read": rule(*READERS, description="Read a requirement"),
        "requirement.endorse": rule(R.FORUM, description="Endorse a need (one-off decision)"),
        "requirement.amend": rule(
            R.RECIPIENT, R.FORUM, description="Amend a need; the forum may change priority only"
        ),
        "requirement.cancel": rule(R.RECIPIENT, description="Cancel a need"),
        "pledge.announce": rule(
            R.DONOR, description="Pledge for your own nation", scope=Scope.OWN_NATION
        ),
        "pledge.read": rule(*READERS, description="Read a pledge"),
        "pledge.confirm": rule(R.FORUM, description="Confirm a pledge (one-off decision)"),
        "pledge.reduce": rule(
            R.DONOR, description="Lower your nation's pledge", scope=Scope.OWN_NATION
        ),
        "pledge.withdraw": rule(
            R.DONOR, description="Withdraw your nation's pledge", scope=Scope.OWN_NATION
        ),
        "decision.record": rule(
            R.FORUM, description="Record a meeting's endorsements and confirmations atomically"
        ),
        "decision.read": rule(*READERS, description="Read a forum decision"),
        "catalogue.read": rule(*READERS, description="List the item catalogue"),
        "catalogue.add": rule(R.ADMIN, description="Add an item to the catalogue"),
        "imports.pledges": rule(R.FORUM, R.ADMIN, description="Import pledges from CSV"),
        "streams.read": rule(*READERS, description="Read a stream's event history"),
        **DEAD_LETTER_RULES,
    },
)
