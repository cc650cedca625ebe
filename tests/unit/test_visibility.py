"""The visibility table: who sees which records and fields of every read surface."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth import Principal, Role
from shared.auth.visibility import (
    FIELD_GROUPS,
    SURFACES,
    TABLE,
    Reach,
    Resource,
    event_resource,
    hidden_fields,
    require_shown,
    roles_seeing,
    shown,
    shown_all,
    shown_event,
)
from shared.domain.errors import Forbidden


def _who(*roles: Role, nation: str | None = None, hub: str | None = None) -> Principal:
    return Principal(sub="someone", roles=frozenset(roles), nation=nation, hub=hub)


SHIPMENT = {
    "id": "SHP-1",
    "donor": "PL",
    "hub": "PL-RZE",
    "quantity": 3,
    "carrier_ref": "DHL-42",
    "delay_reason": "convoy waits at Korczowa",
    "inspection_notes": "seal broken",
    "serials": ["S1", "S2"],
    "lost_serials": ["S3"],
    "handover_serials": ["S1"],
    "eum_discrepancy": {"missing": ["S2"], "unexpected": []},
}
SCOPE = {"hub": "PL-RZE", "donor": "PL"}


@pytest.mark.parametrize(
    ("principal", "sees"),
    [
        (_who(Role.ADMIN), "all"),
        (_who(Role.PLANNER), "all"),
        (_who(Role.RECIPIENT), "all"),
        (_who(Role.HUB, hub="PL-RZE"), "all"),
        (_who(Role.HUB, hub="RO-SUC"), None),
        (_who(Role.HUB), None),
        (_who(Role.DONOR, nation="PL"), "redacted"),
        (_who(Role.DONOR, nation="DE"), None),
        (_who(Role.DONOR), None),
        (_who(Role.FORUM), None),
        (_who(Role.OBSERVER), None),
        (_who(), None),
        # Several roles: the widest view any of them allows.
        (_who(Role.OBSERVER, Role.DONOR, nation="PL"), "redacted"),
        (_who(Role.DONOR, Role.PLANNER, nation="DE"), "all"),
        (_who(Role.DONOR, Role.HUB, nation="PL", hub="PL-RZE"), "all"),
        # A nation claim does nothing without the donor role, a hub claim without the hub role.
        (_who(Role.OBSERVER, nation="PL", hub="PL-RZE"), None),
    ],
)
def test_who_sees_a_shipment(principal: Principal, sees: str | None) -> None:
    seen = shown(principal, Resource.SHIPMENT, SHIPMENT, **SCOPE)
    if sees is None:
        assert seen is None
    elif sees == "all":
        assert seen == SHIPMENT
    else:
        assert seen == {"id": "SHP-1", "donor": "PL", "hub": "PL-RZE", "quantity": 3,
                        "redacted": True}  # fmt: skip


def test_the_donor_code_is_compared_case_insensitively() -> None:
    assert shown(_who(Role.DONOR, nation="PL"), Resource.SHIPMENT, {}, hub="X", donor="pl") == {}


def test_a_record_asked_for_by_id_is_refused_not_redacted() -> None:
    with pytest.raises(Forbidden) as refused:
        require_shown(_who(Role.DONOR, nation="DE"), Resource.SHIPMENT, SHIPMENT, what="It",
                      **SCOPE)  # fmt: skip
    assert refused.value.kind == "forbidden-shipment"
    assert "SHP-1" not in str(refused.value)


def test_a_shipment_event_of_unknown_scope_is_shown_only_to_those_who_see_every_shipment() -> None:
    event: dict[str, Any] = {"type": "shipment.eum_discrepancy", "data": {"missing": ["S2"]}}
    for principal in (_who(Role.HUB, hub="PL-RZE"), _who(Role.DONOR, nation="PL")):
        assert shown_event(principal, event["type"], event, hub=None, donor=None) is None
    assert shown_event(_who(Role.PLANNER), event["type"], event, hub=None, donor=None) == event


def test_observers_see_planning_events_without_people_reasons_or_shipments() -> None:
    event: dict[str, Any] = {
        "type": "requirement.delivery_recorded",
        "actor": "op1@PL-RZE",
        "data": {"shipment_id": "SHP-1", "quantity": 3, "reason": "x"},
    }
    assert shown_event(_who(Role.OBSERVER), event["type"], event, hub=None, donor=None) == {
        "type": "requirement.delivery_recorded",
        "data": {"quantity": 3},
        "redacted": True,
    }


def test_unknown_event_kinds_are_guarded_like_shipments() -> None:
    assert event_resource("teleport.done") is Resource.SHIPMENT_EVENT
    assert event_resource("pledge.announced") is Resource.PLANNING_EVENT


def test_lists_keep_what_may_be_seen() -> None:
    rows = [SHIPMENT, SHIPMENT | {"id": "SHP-2", "hub": "RO-SUC"}]
    assert [r["id"] for r in shown_all(_who(Role.HUB, hub="RO-SUC"), Resource.SHIPMENT, rows)] == [
        "SHP-2"
    ]


def test_status_errors_are_for_admins() -> None:
    status = {"rebuild": {"state": "failed", "error": "boom at /srv/secret"}}
    assert shown(_who(Role.OBSERVER), Resource.STATUS, status) == {
        "rebuild": {"state": "failed"},
        "redacted": True,
    }
    assert shown(_who(Role.ADMIN), Resource.STATUS, status) == status


def test_the_rule_of_the_issue_is_the_table() -> None:
    """Observers and the forum: no shipment, no people, reasons or serials anywhere; donors and
    hub operators: their own nation's or hub's shipments only."""
    for role in (Role.OBSERVER, Role.FORUM):
        assert role not in roles_seeing(Resource.SHIPMENT)
        assert role not in roles_seeing(Resource.SHIPMENT_EVENT)
        assert (
            FIELD_GROUPS["people"] | FIELD_GROUPS["reasons"]
            <= TABLE[Resource.PLANNING_EVENT][role].hidden
        )
    assert TABLE[Resource.SHIPMENT][Role.DONOR].reach is Reach.OWN_NATION
    assert TABLE[Resource.SHIPMENT][Role.HUB].reach is Reach.OWN_HUB
    assert FIELD_GROUPS["serials"] <= TABLE[Resource.SHIPMENT][Role.DONOR].hidden


def test_every_role_has_a_grant_on_every_resource_and_every_surface_names_known_ones() -> None:
    for grants in TABLE.values():
        assert set(grants) == set(Role)
    assert all(set(s.resources) <= set(Resource) for s in SURFACES)
    assert hidden_fields(_who(), Resource.AGGREGATE) is None  # no role: nothing
