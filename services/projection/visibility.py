"""Operational security in the projection's answers: the one shared rule
(`shared.auth.visibility`) applied to shipments, their events and hub boards.

Routes, carrier references, ETAs and serial numbers are shown to planners, the recipient and
the operators of the shipment's hub; everyone else sees that a shipment moved, not how or when
it will arrive (the fields are left out); observers see aggregates only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.auth import Principal, Role
from shared.auth.visibility import redact, shipment_view


def aggregates_only(principal: Principal) -> bool:
    """Observers (with no other role) see counts and totals, not individual shipments."""
    return principal.roles == frozenset({Role.OBSERVER})


def shown(
    principal: Principal, data: Mapping[str, Any], *, hub: str | None, donor: str | None
) -> dict[str, Any]:
    """`data` (an event's or a shipment's) as `principal` may see it."""
    view = shipment_view(principal, donor=donor or "", hub=hub or "")
    return redact(data, "full" if view == "full" else "own")
