"""POST /milestones/batch: per-row results, order by when it happened, idempotent per row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.delivery.conftest import DONOR_DE, HUB_RZE, PLANNER, Delivery

START = datetime.now(UTC) - timedelta(hours=3)  # the field team was offline since


def row(
    row_id: str, shipment_id: str, milestone: str, minute: int, **fields: Any
) -> dict[str, Any]:
    at = (START + timedelta(minutes=minute)).isoformat()
    return {"row_id": row_id, "shipment_id": shipment_id, "milestone": milestone, "at": at} | fields


async def test_a_batch_applies_good_rows_in_order_and_rejects_bad_ones_with_reasons(
    delivery: Delivery,
) -> None:
    at_hub, not_sent, elsewhere = (
        await delivery.plan(),
        await delivery.plan(),
        await delivery.plan(hub="RO-SUC"),
    )
    for shipment_id in (at_hub, elsewhere):
        dispatched = await delivery.client.post(
            f"/shipments/{shipment_id}/dispatch",
            json={"mode": "road", "carrier_ref": "T-1"},
            headers=DONOR_DE,
        )
        assert dispatched.status_code == 200
    run = uuid.uuid4().hex[:8]
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    rows = [
        row(f"{run}-0", at_hub, "depart", 3),  # uploaded before the arrival it depends on
        row(f"{run}-1", at_hub, "arrive", 1),
        row(f"{run}-2", at_hub, "inspect", 2, result="passed"),
        row(f"{run}-3", not_sent, "arrive", 0),  # never dispatched
        row(f"{run}-4", "SHP-unknown", "arrive", 0),
        row(f"{run}-5", at_hub, "teleport", 0),
        row(f"{run}-6", at_hub, "handover", 4, received_good=1, damaged=0, short=0),
        row(f"{run}-7", elsewhere, "arrive", 1),  # another hub's shipment
        row(f"{run}-8", not_sent, "dispatch", 0, mode="road", carrier_ref="T-2"),  # not a hub's
        row(f"{run}-9", at_hub, "delay", 5, reason="border queue", new_eta=tomorrow),
    ]
    response = await delivery.client.post("/milestones/batch", json={"rows": rows}, headers=HUB_RZE)
    assert response.status_code == 200, response.text
    outcome = response.json()
    results = outcome["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        ("applied", 200),
        ("applied", 200),
        ("applied", 200),
        ("rejected", 409),
        ("rejected", 404),
        ("rejected", 422),
        ("rejected", 409),
        ("rejected", 403),
        ("rejected", 403),
        ("applied", 200),
    ]
    assert (outcome["applied"], outcome["rejected"], outcome["replayed"]) == (4, 6, 0)
    assert results[1]["applied_as"] < results[2]["applied_as"] < results[0]["applied_as"]
    assert "has not been dispatched yet" in results[3]["detail"]
    assert [e["field"] for e in results[5]["errors"]] == ["milestone"]
    assert "add up to the 10 items" in results[6]["detail"]
    assert "not RO-SUC" in results[7]["detail"]
    assert "donor, planner" in results[8]["detail"]
    shipment = await delivery.wait_for(at_hub)
    assert (shipment["status"], shipment["version"]) == ("departed_hub", 6)
    assert (await delivery.wait_for(not_sent))["version"] == 1
    assert (await delivery.wait_for(elsewhere))["status"] == "dispatched"

    # The same upload again (the device did not see the answer): nothing is applied twice.
    again = await delivery.client.post("/milestones/batch", json={"rows": rows}, headers=HUB_RZE)
    replayed = again.json()
    assert (replayed["applied"], replayed["replayed"], replayed["rejected"]) == (0, 4, 6)
    for first, second in zip(results, replayed["results"], strict=True):
        if first["status"] == "applied":
            assert second["event_id"] == first["event_id"]
    assert (await delivery.wait_for(at_hub))["version"] == 6

    # A row id reused for something else is refused; a fixed row goes through.
    fixed = [
        row(f"{run}-1", at_hub, "arrive", 9),
        row(f"{run}-6b", at_hub, "handover", 6, received_good=9, damaged=1, short=0),
    ]
    third = await delivery.client.post("/milestones/batch", json={"rows": fixed}, headers=HUB_RZE)
    first_row, second_row = third.json()["results"]
    assert (first_row["status"], first_row["code"]) == ("rejected", 409)
    assert "other content" in first_row["detail"]
    assert second_row["status"] == "applied"
    assert (await delivery.wait_for(at_hub))["status"] == "handed_over"
    seen = await delivery.published(at_hub, "shipment.handed_over")
    assert seen == [
        "shipment.planned",
        "shipment.dispatched",
        "shipment.arrived_at_hub",
        "shipment.inspected",
        "shipment.departed_hub",
        "shipment.delayed",
        "shipment.handed_over",
    ]


async def test_a_whole_batch_resent_with_its_idempotency_key_answers_the_same(
    delivery: Delivery,
) -> None:
    shipment_id = await delivery.plan()
    rows = [
        row(f"{uuid.uuid4().hex}", shipment_id, "delay", 0, reason="strike", new_eta="2099-01-01")
    ]
    headers = PLANNER | {"Idempotency-Key": f"batch-{shipment_id}"}
    first = await delivery.client.post("/milestones/batch", json={"rows": rows}, headers=headers)
    second = await delivery.client.post("/milestones/batch", json={"rows": rows}, headers=headers)
    assert first.json() == second.json()
    assert first.json()["applied"] == 1
    assert second.headers["idempotent-replayed"] == "true"
    assert (await delivery.wait_for(shipment_id))["version"] == 2


async def test_a_batch_is_bounded_and_needs_rows(delivery: Delivery) -> None:
    empty = await delivery.client.post("/milestones/batch", json={"rows": []}, headers=HUB_RZE)
    assert empty.status_code == 422
    huge = [row(str(i), "SHP-x", "arrive", 0) for i in range(501)]
    too_many = await delivery.client.post("/milestones/batch", json={"rows": huge}, headers=HUB_RZE)
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "body.rows"
