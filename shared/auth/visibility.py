"""Operational security: who may see how much of a shipment (pure; no I/O).

The exact route, carrier reference and ETAs of a shipment would tell an adversary where and when
materiel moves. They are shown only to those who move it or receive it:

| who | sees |
|---|---|
| admin, planner | `full`: every shipment with route, carrier reference and ETAs |
| hub operator | `full` at their own hub; `aggregate` elsewhere |
| recipient | `full`: it receives every shipment and must plan the handover |
| donor | `own` for their own nation's shipments: status and quantities, no route, carrier |
|       | or ETA; `aggregate` for other nations' shipments |
| forum, observer | `aggregate`: counts and totals, never a single shipment |

A principal with several roles gets the widest view any of them allows. The delivery and
projection services call `shipment_view` for each shipment they answer with, `redact` the
record for `own`, and leave single shipments out of an `aggregate` answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from shared.auth.policy import Role
from shared.auth.principal import Principal

ShipmentView = Literal["full", "own", "aggregate"]

# Field names (at any depth of a record or event) that reveal where and when materiel moves.
SENSITIVE_SHIPMENT_FIELDS = frozenset(
    {"route", "carrier_ref", "eta", "new_eta", "handover_point", "mode", "delay_reason", "serials"}
)

_WIDTH: dict[ShipmentView, int] = {"aggregate": 0, "own": 1, "full": 2}


def shipment_view(principal: Principal, *, donor: str, hub: str) -> ShipmentView:
    """How much of a shipment from `donor` (ISO alpha-2) through `hub` the principal may see."""
    views: list[ShipmentView] = ["aggregate"]
    if principal.has(Role.ADMIN, Role.PLANNER, Role.RECIPIENT):
        views.append("full")
    if principal.has(Role.HUB) and principal.hub is not None and principal.hub == hub:
        views.append("full")
    if principal.has(Role.DONOR) and principal.nation == donor.upper():
        views.append("own")
    return max(views, key=_WIDTH.__getitem__)


def redact(record: Mapping[str, Any], view: ShipmentView) -> dict[str, Any]:
    """`record` as `view` may see it: unchanged for `full`, without the sensitive fields (at
    any depth) for `own`. An `aggregate` viewer must not get single shipments at all."""
    if view == "aggregate":
        raise ValueError("an aggregate view shows totals, never a single shipment")
    if view == "full":
        return dict(record)
    return _without_sensitive(record) | {"redacted": True}


def _without_sensitive(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: _redacted(value)
        for key, value in record.items()
        if key not in SENSITIVE_SHIPMENT_FIELDS
    }


def _redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _without_sensitive(value)
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
