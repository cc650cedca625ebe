"""Operational security: who may see how and when materiel moves.

Carrier references, ETAs and serial numbers are shown only to planners, the recipient, the
operators of the hub a shipment passes, and the donor whose shipment it is; everyone else sees
that a shipment moved, not how or when it will arrive; observers see aggregates only.

(Local rule: `shared/auth/visibility.py` is being written elsewhere; once it is merged, this
module should call it instead of deciding here.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.auth import Principal, Role

SENSITIVE_FIELDS = frozenset({"carrier_ref", "new_eta", "eta", "serials"})
REDACTED = "[restricted]"


def sees_movement_details(principal: Principal, *, hub: str | None, donor: str | None) -> bool:
    """May `principal` see the carrier reference, ETA and serials of this shipment?"""
    if principal.has(Role.PLANNER, Role.RECIPIENT):
        return True
    if principal.has(Role.HUB) and hub is not None and principal.hub == hub:
        return True
    return principal.has(Role.DONOR) and donor is not None and principal.nation == donor


def aggregates_only(principal: Principal) -> bool:
    """Observers (with no other role) see counts and totals, not individual shipments."""
    return principal.roles == frozenset({Role.OBSERVER})


def redact(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if k in SENSITIVE_FIELDS and v else v) for k, v in data.items()}


def shown(
    principal: Principal, data: Mapping[str, Any], *, hub: str | None, donor: str | None
) -> dict[str, Any]:
    """`data` (an event's or a shipment's) as `principal` may see it."""
    if sees_movement_details(principal, hub=hub, donor=donor):
        return dict(data)
    return redact(data)
