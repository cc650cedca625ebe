"""Who sees what on every read surface: one table, role x resource x field (pure; no I/O).

Each role has a `Grant` on each resource: how far it reaches (any record, its own hub's, its own
nation's, or none: refused) and which fields it does not see (redacted, at any depth). Every
read path of every service answers through `shown()` (one record) or `require_shown()` (a
record asked for by id: refused is 403, never a redacted 200); the live stream through
`shown_event()`. `SURFACES` names each read surface and the resources it answers with; the
table is rendered into docs/access.md and drives the leakage test.

The rule the table writes down: observers and the forum see aggregates, never shipment-level
movements, people, reasons or serials; donors see their own nation's shipments only, without
route, timing details, people, reasons or serials; hub operators see their own hub's; the
recipient every shipment (it receives them all); planners and admins everything. Planning
records (requirements, pledges, decisions, allocations) are open to every role, without the
people and reasons behind them for the forum and observers; the forum reads a requirement's
justification (it endorses needs on it), observers do not. A principal with several roles gets
the widest view any of them allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.auth.policy import Role
from shared.auth.principal import Principal
from shared.domain.errors import Forbidden


class Resource(StrEnum):
    SHIPMENT = "shipment"  # a shipment's record (delivery, board detail, hub board, timeline)
    SHIPMENT_EVENT = "shipment event"  # an event of a shipment's stream (timeline, audit, live)
    PLANNING = "planning record"  # requirements, pledges, allocations, coverage
    PLANNING_EVENT = "planning event"  # requirement, pledge, decision, catalogue, allocation events
    AGGREGATE = (
        "aggregate"  # counts and totals: board figures, ledgers, gaps, hub and shipment sums
    )
    STATUS = "service status"  # lag, events applied, rebuild progress
    DEAD_LETTERS = "dead letters"  # a consumer's failed messages, in full


class Reach(StrEnum):
    """Which records of a resource a role's grant covers."""

    ANY = "any"
    OWN_HUB = "own hub"  # the record's hub is the token's `hub`
    OWN_NATION = "own nation"  # the record's donor is the token's `nation`
    NONE = "refused"


class Access(StrEnum):
    VISIBLE = "visible"
    REDACTED = "redacted"
    REFUSED = "refused"


# The fields a grant may hide, in groups named after what they reveal.
FIELD_GROUPS: dict[str, frozenset[str]] = {
    "movement": frozenset(
        {"route", "carrier_ref", "eta", "new_eta", "handover_point", "mode", "delayed"}
    ),
    "people": frozenset({"actor", "approved_by"}),
    "reasons": frozenset(
        {
            "reason",
            "notes",
            "refusal",
            "rationale",
            "delay_reason",
            "inspection_notes",
            "cancel_reason",
            "withdraw_reason",
            "loss_reason",
            "shortfall_reason",
        }
    ),
    # Why the recipient needs something: what the forum endorses on, so the forum reads it.
    "justification": frozenset({"justification"}),
    "serials": frozenset(
        {"serials", "missing", "unexpected", "lost_serials", "handover_serials", "eum_discrepancy"}
    ),
    # `deliveries`: a requirement's shipment id -> quantity delivered.
    "shipment references": frozenset({"shipment_id", "deliveries"}),
    "errors": frozenset({"error"}),
}


def _fields(*groups: str) -> frozenset[str]:
    return frozenset().union(*(FIELD_GROUPS[g] for g in groups))


@dataclass(frozen=True)
class Grant:
    reach: Reach
    hidden: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()  # the names of the hidden field groups, for the docs

    def access(self, field: str) -> Access:
        if self.reach is Reach.NONE:
            return Access.REFUSED
        return Access.REDACTED if field in self.hidden else Access.VISIBLE


def grant(reach: Reach, *hidden_groups: str) -> Grant:
    return Grant(reach, _fields(*hidden_groups), hidden_groups)


ALL = grant(Reach.ANY)
REFUSED = grant(Reach.NONE)

_SHIPMENTS = {
    Role.ADMIN: ALL,
    Role.PLANNER: ALL,
    Role.RECIPIENT: ALL,  # it receives every shipment and plans the handover
    Role.HUB: grant(Reach.OWN_HUB),
    Role.DONOR: grant(Reach.OWN_NATION, "movement", "people", "reasons", "serials"),
    Role.FORUM: REFUSED,
    Role.OBSERVER: REFUSED,
}

# A planning record and the events that made it are one fact: one grant for both, so a record
# read by id never shows what its events' frames hold back.
_PLANNING = {
    Role.ADMIN: ALL,
    Role.PLANNER: ALL,
    Role.RECIPIENT: ALL,
    # A requirement's deliveries name shipments, perhaps another hub's or nation's.
    Role.HUB: grant(Reach.ANY, "shipment references"),
    Role.DONOR: grant(Reach.ANY, "shipment references"),
    Role.FORUM: grant(Reach.ANY, "people", "reasons", "shipment references"),
    Role.OBSERVER: grant(Reach.ANY, "people", "reasons", "justification", "shipment references"),
}

TABLE: dict[Resource, dict[Role, Grant]] = {
    Resource.SHIPMENT: _SHIPMENTS,
    Resource.SHIPMENT_EVENT: _SHIPMENTS,
    Resource.PLANNING: _PLANNING,
    Resource.PLANNING_EVENT: _PLANNING,
    Resource.AGGREGATE: {role: ALL for role in Role},
    Resource.STATUS: {
        role: ALL if role is Role.ADMIN else grant(Reach.ANY, "errors") for role in Role
    },
    Resource.DEAD_LETTERS: {role: ALL if role is Role.ADMIN else REFUSED for role in Role},
}

# Which resource an event is, by the first part of its type; an unknown kind is treated as
# the most guarded (a shipment's event, shown only to those who see every shipment).
EVENT_RESOURCES: dict[str, Resource] = {
    "shipment": Resource.SHIPMENT_EVENT,
    "requirement": Resource.PLANNING_EVENT,
    "pledge": Resource.PLANNING_EVENT,
    "decision": Resource.PLANNING_EVENT,
    "catalogue": Resource.PLANNING_EVENT,
    "allocation": Resource.PLANNING_EVENT,
    "shortfall": Resource.PLANNING_EVENT,
}


def event_resource(event_type: str) -> Resource:
    return EVENT_RESOURCES.get(event_type.split(".", 1)[0], Resource.SHIPMENT_EVENT)


@dataclass(frozen=True)
class Surface:
    """A read surface and the resources its answers are made of."""

    service: str
    path: str  # `GET /route` as the service declares it, or a client of one
    resources: tuple[Resource, ...]
    note: str = ""


SURFACES: tuple[Surface, ...] = (
    Surface("delivery", "GET /shipments", (Resource.SHIPMENT,), "a shipment not seen is left out"),
    Surface("delivery", "GET /shipments/{shipment_id}", (Resource.SHIPMENT,)),
    Surface("delivery", "GET /shipments/summary", (Resource.AGGREGATE,)),
    Surface(
        "projection",
        "GET /board/requirements",
        (Resource.AGGREGATE,),
        "also ?format=csv and ?as_of= (as on every board, ledger, gaps and decision route)",
    ),
    Surface(
        "projection",
        "GET /changes",
        (Resource.AGGREGATE, Resource.PLANNING, Resource.SHIPMENT),
        "a shipment's line as the table shows the shipment, else only its figures under its "
        "requirement; also CSV",
    ),
    Surface(
        "projection",
        "GET /board/requirements/{requirement_id}",
        (Resource.AGGREGATE, Resource.PLANNING, Resource.SHIPMENT),
        "shipments not seen are left out",
    ),
    Surface("projection", "GET /donors/{nation}/ledger", (Resource.AGGREGATE,)),
    Surface("projection", "GET /capabilities/gaps", (Resource.AGGREGATE,)),
    Surface("projection", "GET /hubs", (Resource.AGGREGATE,)),
    Surface("projection", "GET /decisions", (Resource.AGGREGATE,), "also ?format=csv and ?as_of="),
    Surface(
        "projection",
        "GET /decisions/{decision_id}/execution",
        (Resource.AGGREGATE, Resource.PLANNING, Resource.SHIPMENT),
        "figures and stuck states for all; shipments not seen are left out; also ?format=csv",
    ),
    Surface(
        "projection",
        "GET /hubs/{hub}",
        (Resource.AGGREGATE, Resource.SHIPMENT),
        "figures for all; shipments not seen are left out of the lists",
    ),
    Surface(
        "projection",
        "GET /shipments/{shipment_id}/timeline",
        (Resource.SHIPMENT, Resource.SHIPMENT_EVENT),
    ),
    Surface(
        "projection",
        "GET /audit/{stream_id}",
        (Resource.SHIPMENT_EVENT, Resource.PLANNING_EVENT),
        "a stream is refused when its latest event is",
    ),
    Surface(
        "projection",
        "GET /events/stream",
        (Resource.SHIPMENT_EVENT, Resource.PLANNING_EVENT),
        "live and resumed; an event not seen is not sent",
    ),
    Surface("projection", "GET /admin/status", (Resource.STATUS,)),
    Surface(
        "projection",
        "GET /",
        (Resource.AGGREGATE, Resource.PLANNING_EVENT),
        "the dashboard: the routes above with the viewer's token",
    ),
    Surface(
        "cli",
        "aidline tail",
        (Resource.SHIPMENT_EVENT, Resource.PLANNING_EVENT),
        "reads GET /events/stream with the caller's token",
    ),
    Surface("every service", "GET /admin/dead-letters", (Resource.DEAD_LETTERS,)),
    Surface("every service", "GET /admin/dead-letters/{letter_id}", (Resource.DEAD_LETTERS,)),
    Surface("request", "GET /requirements/{requirement_id}", (Resource.PLANNING,)),
    Surface("request", "GET /pledges/{pledge_id}", (Resource.PLANNING,)),
    Surface("request", "GET /decisions/{decision_id}", (Resource.PLANNING,)),
    Surface("request", "GET /catalogue/items", (Resource.PLANNING,)),
    Surface("request", "GET /streams/{stream_id}/events", (Resource.PLANNING_EVENT,)),
    Surface("allocation", "GET /allocations", (Resource.PLANNING,)),
    Surface("allocation", "GET /allocations/{allocation_id}", (Resource.PLANNING,)),
    Surface("allocation", "GET /requirements/{requirement_id}/coverage", (Resource.PLANNING,)),
)


# -- applying the table --------------------------------------------------------------------------


def _applies(grant: Grant, principal: Principal, *, hub: str | None, donor: str | None) -> bool:
    if grant.reach is Reach.ANY:
        return True
    if grant.reach is Reach.OWN_HUB:
        return principal.hub is not None and hub is not None and principal.hub == hub
    if grant.reach is Reach.OWN_NATION:
        return (
            principal.nation is not None and donor is not None and principal.nation == donor.upper()
        )
    return False


def hidden_fields(
    principal: Principal, resource: Resource, *, hub: str | None = None, donor: str | None = None
) -> frozenset[str] | None:
    """The fields `principal` does not see of a record of `resource` at `hub` from `donor`, or
    None when it does not see the record at all. Several roles: the widest view wins."""
    widest: frozenset[str] | None = None
    for role in principal.roles:
        g = TABLE[resource][role]
        if _applies(g, principal, hub=hub, donor=donor):
            widest = g.hidden if widest is None else widest & g.hidden
    return widest


def roles_seeing(resource: Resource) -> tuple[Role, ...]:
    """The roles that see some record of `resource` (for the access rules of its routes)."""
    return tuple(role for role in Role if TABLE[resource][role].reach is not Reach.NONE)


def shown(
    principal: Principal,
    resource: Resource,
    record: Mapping[str, Any],
    *,
    hub: str | None = None,
    donor: str | None = None,
) -> dict[str, Any] | None:
    """`record` as `principal` may see it (hidden fields left out at any depth, and
    `"redacted": true` when any was there), or None: not to be shown at all."""
    hidden = hidden_fields(principal, resource, hub=hub, donor=donor)
    if hidden is None:
        return None
    if not hidden:
        return dict(record)
    kept = _without(record, hidden)
    if _has_any(record, hidden):
        kept["redacted"] = True
    return kept


def require_shown(
    principal: Principal,
    resource: Resource,
    record: Mapping[str, Any],
    *,
    what: str,
    hub: str | None = None,
    donor: str | None = None,
) -> dict[str, Any]:
    """As `shown`, for a record asked for by id: Forbidden (403) when it is not to be shown."""
    seen = shown(principal, resource, record, hub=hub, donor=donor)
    if seen is None:
        raise Forbidden(
            f"{what} is not yours to see: your role sees totals only, or it is another "
            "nation's or another hub's (docs/access.md).",
            kind=f"forbidden-{resource.name.lower().replace('_', '-')}",
        )
    return seen


def shown_event(
    principal: Principal,
    event_type: str,
    record: Mapping[str, Any],
    *,
    hub: str | None,
    donor: str | None,
) -> dict[str, Any] | None:
    """An event (its envelope and data) as `principal` may see it, by its type; None: not sent."""
    return shown(principal, event_resource(event_type), record, hub=hub, donor=donor)


def shown_all(
    principal: Principal,
    resource: Resource,
    records: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The records `principal` may see, each as it may see it (scoped by its `hub`, `donor`)."""
    return [
        seen
        for r in records
        if (seen := shown(principal, resource, r, hub=r.get("hub"), donor=r.get("donor")))
        is not None
    ]


def _without(record: Mapping[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    return {k: _strip(v, hidden) for k, v in record.items() if k not in hidden}


def _strip(value: Any, hidden: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return _without(value, hidden)
    if isinstance(value, list | tuple):
        return [_strip(item, hidden) for item in value]
    return value


def _has_any(value: Any, hidden: frozenset[str]) -> bool:
    if isinstance(value, Mapping):
        return any(k in hidden or _has_any(v, hidden) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_any(item, hidden) for item in value)
    return False
