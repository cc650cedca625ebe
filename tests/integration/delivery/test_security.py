"""Who may do what to a shipment and who sees its route: a negative test per forbidden path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.delivery.conftest import (
    DONOR_DE,
    DONOR_FR,
    FORUM,
    HUB_RZE,
    HUB_SUC,
    OBSERVER,
    PLANNER,
    RECIPIENT,
    Delivery,
)

BODIES: dict[str, dict[str, Any] | None] = {
    "dispatch": {"mode": "road", "carrier_ref": "T-1"},
    "arrive": None,
    "inspect": {"result": "passed"},
    "depart": None,
    "handover": {"received_good": 10, "damaged": 0, "short": 0},
    "receive": None,
    "delay": {"reason": "queue", "new_eta": "2099-01-01"},
    "report-loss": {"quantity": 1, "reason": "stolen"},
}


@pytest.fixture(scope="module")
async def shipment_id(delivery: Delivery) -> str:
    """A planned shipment of Germany's at PL-RZE that no test here may change."""
    return await delivery.plan(hub="PL-RZE", donor="DE")


async def _post(delivery: Delivery, shipment_id: str, step: str, headers: dict[str, str]) -> Any:
    return await delivery.client.post(
        f"/shipments/{shipment_id}/{step}", json=BODIES[step], headers=headers
    )


@pytest.mark.parametrize(
    "step", ["arrive", "inspect", "depart", "handover", "delay", "report-loss"]
)
async def test_a_hub_operator_of_another_hub_is_refused(
    delivery: Delivery, shipment_id: str, step: str
) -> None:
    response = await _post(delivery, shipment_id, step, HUB_SUC)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden-hub")
    assert "not PL-RZE" in response.json()["detail"]


async def test_a_donor_cannot_dispatch_another_nations_shipment(
    delivery: Delivery, shipment_id: str
) -> None:
    response = await _post(delivery, shipment_id, "dispatch", DONOR_FR)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden-nation")


@pytest.mark.parametrize(
    "who", [PLANNER, HUB_RZE, DONOR_DE, FORUM], ids=["planner", "hub", "donor", "forum"]
)
async def test_only_the_recipient_confirms_receipt(
    delivery: Delivery, shipment_id: str, who: dict[str, str]
) -> None:
    response = await _post(delivery, shipment_id, "receive", who)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden-role")


@pytest.mark.parametrize(
    ("step", "who"),
    [
        ("dispatch", HUB_RZE),
        ("arrive", DONOR_DE),
        ("arrive", PLANNER),
        ("delay", DONOR_DE),
        ("report-loss", RECIPIENT),
        ("handover", FORUM),
    ],
)
async def test_roles_outside_a_milestones_rule_are_refused(
    delivery: Delivery, shipment_id: str, step: str, who: dict[str, str]
) -> None:
    response = await _post(delivery, shipment_id, step, who)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden-role")


@pytest.mark.parametrize("step", sorted(BODIES))
async def test_an_observer_changes_nothing(delivery: Delivery, shipment_id: str, step: str) -> None:
    assert (await _post(delivery, shipment_id, step, OBSERVER)).status_code == 403


async def test_observers_and_the_forum_see_aggregates_only(
    delivery: Delivery, shipment_id: str
) -> None:
    client = delivery.client
    assert (await client.get(f"/shipments/{shipment_id}", headers=OBSERVER)).status_code == 403
    for aggregates_only in (OBSERVER, FORUM):
        assert (await client.get("/shipments", headers=aggregates_only)).status_code == 403
    batch = {"rows": [{"row_id": "x", "shipment_id": shipment_id, "milestone": "arrive"}]}
    assert (await client.post("/milestones/batch", json=batch, headers=OBSERVER)).status_code == 403
    summary = await client.get("/shipments/summary?hub=PL-RZE", headers=OBSERVER)
    assert summary.status_code == 200
    groups = summary.json()["groups"]
    assert any(g["status"] == "planned" and g["shipments"] >= 1 for g in groups)
    assert set(groups[0]) == {"hub", "status", "shipments", "quantity"}


async def test_without_a_token_nothing_is_answered(delivery: Delivery, shipment_id: str) -> None:
    assert (await delivery.client.get(f"/shipments/{shipment_id}")).status_code == 401
    assert (await _post(delivery, shipment_id, "arrive", {})).status_code == 401


async def test_refused_commands_changed_nothing(delivery: Delivery, shipment_id: str) -> None:
    shipment = await delivery.wait_for(shipment_id)
    assert (shipment["status"], shipment["version"]) == ("planned", 1)


async def test_routes_carriers_and_etas_are_shown_by_role(delivery: Delivery) -> None:
    shipment_id = await delivery.plan(hub="PL-RZE", donor="DE")
    url = f"/shipments/{shipment_id}"
    body = {"mode": "air", "carrier_ref": "AN-124-77"}
    assert (await delivery.client.post(f"{url}/dispatch", json=body, headers=DONOR_DE)).is_success
    for who in (PLANNER, RECIPIENT, HUB_RZE):
        shown = (await delivery.client.get(url, headers=who)).json()
        assert (shown["carrier_ref"], shown["handover_point"]) == (
            "AN-124-77",
            "Korczowa–Krakovets",  # noqa: RUF001 (the crossing's name)
        )
    shown = (await delivery.client.get(url, headers=DONOR_DE)).json()
    assert shown["redacted"] is True
    assert not {"carrier_ref", "mode", "eta", "handover_point", "delay_reason", "serials",
                "lost_serials", "handover_serials", "eum_discrepancy"} & set(shown)  # fmt: skip
    assert shown["status"] == "dispatched"
    for who in (HUB_SUC, FORUM, DONOR_FR):  # totals only: GET /shipments/summary
        assert (await delivery.client.get(url, headers=who)).status_code == 403
    listed_fr = (await delivery.client.get("/shipments?limit=200", headers=DONOR_FR)).json()
    assert all(item["donor"] == "FR" for item in listed_fr["items"])
    listed_de = (
        await delivery.client.get(
            "/shipments?status=dispatched&hub=PL-RZE&limit=200", headers=DONOR_DE
        )
    ).json()
    assert listed_de["items"] and all(item["donor"] == "DE" for item in listed_de["items"])
    assert all("carrier_ref" not in item for item in listed_de["items"])


async def test_the_list_filters_and_pages(delivery: Delivery) -> None:
    first = (await delivery.client.get("/shipments?hub=RO-SUC&limit=1", headers=PLANNER)).json()
    assert first["limit"] == 1 and len(first["items"]) <= 1
    # Page after page by the Link header (the filter kept) gives the whole list once.
    for _ in range(3):
        await delivery.plan(hub="RO-SUC", donor="FR")
    listed = "/shipments?hub=RO-SUC&limit=500"
    everything = (await delivery.client.get(listed, headers=PLANNER)).json()
    expected = [i["shipment_id"] for i in everything["items"]]
    assert everything["next_offset"] is None and len(expected) == everything["total"] >= 3
    seen: list[str] = []
    url: str | None = "/shipments?hub=RO-SUC&limit=2"
    while url is not None:
        page = await delivery.client.get(url, headers=PLANNER)
        body = page.json()
        seen += [i["shipment_id"] for i in body["items"]]
        assert body["total"] == len(expected)
        link = page.headers.get("Link")
        assert (link is None) == (body["next_offset"] is None), link
        assert link is None or ("hub=RO-SUC" in link and link.endswith('>; rel="next"'))
        url = link[1 : link.index(">")] if link else None
    assert seen == expected
    bad = await delivery.client.get("/shipments?status=flying&limit=0", headers=PLANNER)
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"query.status", "query.limit"}


@pytest.mark.parametrize(
    ("milestone", "who", "kind"),
    [
        ("dispatch", DONOR_FR, "forbidden-nation"),
        ("arrive", HUB_SUC, "forbidden-hub"),
        ("report_loss", HUB_SUC, "forbidden-hub"),
        ("receive", HUB_RZE, "forbidden-role"),
        ("arrive", RECIPIENT, "forbidden-role"),
    ],
)
async def test_batch_rows_are_checked_like_single_milestones(
    delivery: Delivery, shipment_id: str, milestone: str, who: dict[str, str], kind: str
) -> None:
    fields = BODIES[milestone.replace("_", "-")] or {}
    row = {"row_id": f"{kind}-{milestone}", "shipment_id": shipment_id, "milestone": milestone}
    row |= {"at": "2026-11-25T10:00:00Z", **fields}
    response = await delivery.client.post("/milestones/batch", json={"rows": [row]}, headers=who)
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", 403)
    assert result["type"].endswith(f"/{kind}")
