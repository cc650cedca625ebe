"""Operational security: who sees a shipment's route, carrier reference and ETAs."""

from __future__ import annotations

import pytest

from shared.auth import Principal, Role
from shared.auth.visibility import SENSITIVE_SHIPMENT_FIELDS, redact, shipment_view


def _who(*roles: Role, nation: str | None = None, hub: str | None = None) -> Principal:
    return Principal(sub="someone", roles=frozenset(roles), nation=nation, hub=hub)


SHIPMENT = {"donor": "PL", "hub": "PL-RZE"}


@pytest.mark.parametrize(
    ("principal", "view"),
    [
        (_who(Role.ADMIN), "full"),
        (_who(Role.PLANNER), "full"),
        (_who(Role.RECIPIENT), "full"),
        (_who(Role.HUB, hub="PL-RZE"), "full"),
        (_who(Role.HUB, hub="RO-SUC"), "aggregate"),
        (_who(Role.HUB), "aggregate"),
        (_who(Role.DONOR, nation="PL"), "own"),
        (_who(Role.DONOR, nation="DE"), "aggregate"),
        (_who(Role.DONOR), "aggregate"),
        (_who(Role.FORUM), "aggregate"),
        (_who(Role.OBSERVER), "aggregate"),
        (_who(), "aggregate"),
        # Several roles: the widest view any of them allows.
        (_who(Role.OBSERVER, Role.DONOR, nation="PL"), "own"),
        (_who(Role.DONOR, Role.PLANNER, nation="DE"), "full"),
        (_who(Role.DONOR, Role.HUB, nation="PL", hub="PL-RZE"), "full"),
        # A nation claim does nothing without the donor role, a hub claim without the hub role.
        (_who(Role.OBSERVER, nation="PL", hub="PL-RZE"), "aggregate"),
    ],
)
def test_shipment_view(principal: Principal, view: str) -> None:
    assert shipment_view(principal, **SHIPMENT) == view


def test_the_donor_code_is_compared_case_insensitively() -> None:
    assert shipment_view(_who(Role.DONOR, nation="PL"), donor="pl", hub="PL-RZE") == "own"


def test_redact_keeps_everything_for_the_full_view() -> None:
    record = {"shipment_id": "S-1", "carrier_ref": "DHL-42", "eta": "2026-05-01"}
    assert redact(record, "full") == record


def test_redact_removes_route_carrier_and_etas_at_any_depth_for_own() -> None:
    record = {
        "shipment_id": "S-1",
        "quantity": 10,
        "carrier_ref": "DHL-42",
        "handover_point": "Korczowa",
        "timeline": [
            {"type": "shipment.dispatched", "data": {"mode": "rail", "carrier_ref": "PKP-7"}},
            {"type": "shipment.delayed", "data": {"reason": "weather", "new_eta": "2026-05-03"}},
        ],
    }
    assert redact(record, "own") == {
        "shipment_id": "S-1",
        "quantity": 10,
        "redacted": True,
        "timeline": [
            {"type": "shipment.dispatched", "data": {}},
            {"type": "shipment.delayed", "data": {"reason": "weather"}},
        ],
    }


def test_the_sensitive_fields_are_those_the_contract_names() -> None:
    assert {"carrier_ref", "new_eta", "handover_point", "mode"} <= SENSITIVE_SHIPMENT_FIELDS


def test_an_aggregate_viewer_never_gets_a_single_shipment() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        redact({"shipment_id": "S-1"}, "aggregate")
