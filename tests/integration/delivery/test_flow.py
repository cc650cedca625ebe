"""The delivery service over HTTP and the real broker: planning from allocation events,
milestones, end-use monitoring, losses, cancellations, redelivery."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts.allocations import AllocationApproved, AllocationCancelled
from shared.contracts.allocations import registry as allocations
from shared.contracts.requests import registry as requests_catalogue
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from tests.infra import header, produce, read_topic
from tests.integration.delivery.conftest import (
    DONOR_DE,
    HUB_RZE,
    PLANNER,
    RECIPIENT,
    Delivery,
    pledge,
    proposal,
    stored,
)

TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()


async def test_an_approved_allocation_becomes_a_planned_shipment_on_the_topic(
    delivery: Delivery,
) -> None:
    shipment_id = await delivery.plan(item_code="ART-155-HE", quantity=12, hub="RO-SUC")
    shipment = await delivery.wait_for(shipment_id)
    assert shipment["status"] == "planned"
    assert (shipment["donor"], shipment["quantity"], shipment["hub"]) == ("DE", 12, "RO-SUC")
    assert shipment["handover_point"] == "Siret–Porubne"  # noqa: RUF001 (the crossing's name)
    assert shipment["eum_class"] == "none"
    assert await delivery.published(shipment_id, "shipment.planned") == ["shipment.planned"]
    record = next(r for r in await read_topic(DELIVERIES) if r.key == shipment_id.encode())
    assert header(record, "ce_source") == "/aidline/delivery"
    assert header(record, "ce_actor") == "delivery-service"
    # Planned in answer to the approval, or to the pledge when the approval came first and
    # waited for it (the two topics are read in no guaranteed order): it carries that cause.
    run = shipment_id.removeprefix("SHP-A-")
    assert header(record, "ce_correlationid") in (f"c-A-{run}", f"c-P-{run}")


async def test_approval_waits_for_the_pledge_that_names_the_donor(delivery: Delivery) -> None:
    run = uuid.uuid4().hex[:12]
    pledge_id, allocation_id = f"P-{run}", f"A-{run}"
    proposed = proposal(allocation_id, pledge_id, "DR-FPV-KIT", 5, "PL-RZE")
    approved = AllocationApproved(approved_by="planner")
    await produce(
        ALLOCATIONS,
        [
            stored(allocations, allocation_id, 1, proposed),
            stored(allocations, allocation_id, 2, approved),
        ],
    )
    await delivery.caught_up(ALLOCATIONS)
    response = await delivery.client.get(f"/shipments/SHP-{allocation_id}", headers=PLANNER)
    assert response.status_code == 404  # no donor known yet: nothing is planned
    await produce(
        REQUESTS, [stored(requests_catalogue, pledge_id, 1, pledge(pledge_id, "PL", "DR-FPV-KIT"))]
    )
    shipment = await delivery.wait_for(f"SHP-{allocation_id}")
    assert shipment["donor"] == "PL"


async def test_a_redelivered_approval_plans_one_shipment(delivery: Delivery) -> None:
    shipment_id = await delivery.plan()
    allocation_id = shipment_id.removeprefix("SHP-")
    again = stored(allocations, allocation_id, 2, AllocationApproved(approved_by="planner"))
    # The same event twice (a relay re-publishing) and a second approval with its own id.
    await produce(ALLOCATIONS, [again, again])
    await delivery.caught_up(ALLOCATIONS)
    shipment = await delivery.wait_for(shipment_id)
    assert shipment["version"] == 1
    assert await delivery.published(shipment_id, "shipment.planned") == ["shipment.planned"]


async def test_a_shipment_walks_through_every_milestone(delivery: Delivery) -> None:
    shipment_id = await delivery.plan(quantity=10)
    url = f"/shipments/{shipment_id}"
    post = delivery.client.post

    dispatched = await post(
        f"{url}/dispatch",
        json={"mode": "rail", "carrier_ref": "DB-CARGO-77"},
        headers=DONOR_DE | {"Idempotency-Key": f"k-{shipment_id}", "If-Match": '"1"'},
    )
    assert dispatched.status_code == 200, dispatched.text
    assert dispatched.json()["version"] == 2 and dispatched.headers["etag"] == '"2"'
    replay = await post(
        f"{url}/dispatch",
        json={"mode": "rail", "carrier_ref": "DB-CARGO-77"},
        headers=DONOR_DE | {"Idempotency-Key": f"k-{shipment_id}", "If-Match": '"1"'},
    )
    assert replay.json() == dispatched.json()
    assert replay.headers["idempotent-replayed"] == "true"

    stale = await post(f"{url}/arrive", headers=HUB_RZE | {"If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await post(f"{url}/arrive", headers=HUB_RZE)).status_code == 200
    held = await post(
        f"{url}/inspect", json={"result": "held", "notes": "seal broken"}, headers=HUB_RZE
    )
    assert held.status_code == 200
    blocked = await post(f"{url}/depart", headers=HUB_RZE)
    assert blocked.status_code == 409
    assert "held at inspection (seal broken)" in blocked.json()["detail"]
    assert blocked.headers["content-type"] == "application/problem+json"
    passed = await post(
        f"{url}/inspect", json={"result": "passed", "notes": "resealed"}, headers=HUB_RZE
    )
    assert passed.status_code == 200
    assert (await post(f"{url}/depart", headers=HUB_RZE)).status_code == 200
    delayed = await post(
        f"{url}/delay", json={"reason": "border queue", "new_eta": TOMORROW}, headers=PLANNER
    )
    assert delayed.status_code == 200
    short = await post(
        f"{url}/handover", json={"received_good": 8, "damaged": 1, "short": 0}, headers=HUB_RZE
    )
    assert short.status_code == 409
    assert "add up to the 10 items" in short.json()["detail"]
    handed = await post(
        f"{url}/handover", json={"received_good": 8, "damaged": 1, "short": 1}, headers=HUB_RZE
    )
    assert handed.status_code == 200
    received = await post(f"{url}/receive", headers=RECIPIENT)
    assert received.status_code == 200

    shipment = (await delivery.client.get(url, headers=PLANNER)).json()
    assert shipment["status"] == "received"
    assert shipment["handover"] == {"received_good": 8, "damaged": 1, "short": 1}
    assert (shipment["carrier_ref"], shipment["eta"]) == ("DB-CARGO-77", TOMORROW)
    assert await delivery.published(shipment_id, "shipment.received") == [
        "shipment.planned",
        "shipment.dispatched",
        "shipment.arrived_at_hub",
        "shipment.inspected",
        "shipment.inspected",
        "shipment.departed_hub",
        "shipment.delayed",
        "shipment.handed_over",
        "shipment.received",
    ]


async def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(delivery: Delivery) -> None:
    shipment_id = await delivery.plan()
    url = f"/shipments/{shipment_id}"
    bad = await delivery.client.post(
        f"{url}/dispatch", json={"mode": "boat", "carrier_ref": ""}, headers=DONOR_DE
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"body.mode", "body.carrier_ref"}
    unknown = await delivery.client.post("/shipments/SHP-nope/arrive", headers=HUB_RZE)
    assert unknown.status_code == 404
    assert (await delivery.client.get(url, headers=PLANNER)).json()["version"] == 1


async def test_enhanced_items_need_serials_and_discrepancies_are_recorded(
    delivery: Delivery,
) -> None:
    shipment_id = await delivery.plan(item_code="AD-PATRIOT-PAC3", quantity=3)
    url = f"/shipments/{shipment_id}"
    post = delivery.client.post
    no_serials = await post(
        f"{url}/dispatch", json={"mode": "air", "carrier_ref": "USAF-1"}, headers=DONOR_DE
    )
    assert no_serials.status_code == 409
    assert "enhanced end-use monitoring" in no_serials.json()["detail"]
    serials = ["PAC3-001", "PAC3-002", "PAC3-003"]
    body = {"mode": "air", "carrier_ref": "USAF-1", "serials": serials}
    assert (await post(f"{url}/dispatch", json=body, headers=DONOR_DE)).status_code == 200
    for step, payload in (("arrive", None), ("inspect", {"result": "passed"}), ("depart", None)):
        assert (await post(f"{url}/{step}", json=payload, headers=HUB_RZE)).status_code == 200
    handover = {"received_good": 2, "damaged": 0, "short": 1, "serials": ["PAC3-001", "PAC3-999"]}
    assert (await post(f"{url}/handover", json=handover, headers=HUB_RZE)).status_code == 200

    shipment = (await delivery.client.get(url, headers=PLANNER)).json()
    assert shipment["eum_discrepancy"] == {
        "missing": ["PAC3-002", "PAC3-003"],
        "unexpected": ["PAC3-999"],
    }
    seen = await delivery.published(shipment_id, "shipment.eum_discrepancy")
    assert seen[-2:] == ["shipment.handed_over", "shipment.eum_discrepancy"]


async def test_a_loss_is_published_for_the_allocation_service_to_replan(
    delivery: Delivery,
) -> None:
    shipment_id = await delivery.plan(quantity=10)
    url = f"/shipments/{shipment_id}"
    post = delivery.client.post
    body = {"mode": "road", "carrier_ref": "TRUCK-5"}
    assert (await post(f"{url}/dispatch", json=body, headers=DONOR_DE)).status_code == 200
    loss = {"quantity": 4, "reason": "truck overturned"}
    lost = await post(f"{url}/report-loss", json=loss, headers=PLANNER)
    assert lost.status_code == 200
    too_much = await post(f"{url}/report-loss", json={**loss, "quantity": 7}, headers=HUB_RZE)
    assert too_much.status_code == 409
    assert "only 6 of the 10 items" in too_much.json()["detail"]
    await delivery.published(shipment_id, "shipment.lost")
    record = next(
        r
        for r in await read_topic(DELIVERIES)
        if r.key == shipment_id.encode() and header(r, "ce_type") == "shipment.lost"
    )
    assert record.value is not None and json.loads(record.value)["quantity"] == 4
    shipment = (await delivery.client.get(url, headers=PLANNER)).json()
    assert (shipment["lost"], shipment["remaining"]) == (4, 6)


async def test_a_cancelled_allocation_cancels_a_shipment_that_has_not_left(
    delivery: Delivery,
) -> None:
    waiting = await delivery.plan()
    gone = await delivery.plan()
    body = {"mode": "road", "carrier_ref": "TRUCK-9"}
    dispatched = await delivery.client.post(
        f"/shipments/{gone}/dispatch", json=body, headers=DONOR_DE
    )
    assert dispatched.status_code == 200
    cancelled = AllocationCancelled(reason="pledge withdrawn")
    await produce(
        ALLOCATIONS,
        [
            stored(allocations, shipment.removeprefix("SHP-"), 3, cancelled)
            for shipment in (waiting, gone)
        ],
    )
    assert (await delivery.wait_for(waiting, "cancelled"))["cancel_reason"] == "pledge withdrawn"
    seen = await delivery.published(gone, "shipment.cancellation_refused")
    assert seen[-1] == "shipment.cancellation_refused"
    assert (await delivery.wait_for(gone))["status"] == "dispatched"
    assert (await delivery.published(waiting, "shipment.cancelled"))[-1] == "shipment.cancelled"
    again = await delivery.client.post(
        f"/shipments/{waiting}/dispatch", json=body, headers=DONOR_DE
    )
    assert again.status_code == 409 and "was cancelled" in again.json()["detail"]
