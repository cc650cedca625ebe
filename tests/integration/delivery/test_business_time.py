"""Business time of milestones: a batch uploaded after days offline dates each milestone by its
row's `at` (`ce_occurredat`), not by the upload; the projection, fed the records the service
published, dates the shipment's steps and the chart's deliveries by it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.topics import DELIVERIES
from tests.infra import end_offsets, eventually, header, read_topic
from tests.integration.delivery.conftest import HUB_RZE, PLANNER, Delivery
from tests.projection import Topics, auth, projection_service, republish

# Long enough ago that no record time can be mistaken for it.
OFFLINE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)


def at(days: float) -> datetime:
    return OFFLINE + timedelta(days=days)


def row(run: str, shipment_id: str, milestone: str, days: float, **fields: Any) -> dict[str, Any]:
    return {
        "row_id": f"{run}-{milestone}", "shipment_id": shipment_id, "milestone": milestone,
        "at": at(days).isoformat(),
    } | fields  # fmt: skip


async def test_a_batch_dates_milestones_when_they_happened(delivery: Delivery) -> None:
    since = await end_offsets(DELIVERIES)
    shipment_id = await delivery.plan(quantity=12)
    run = uuid.uuid4().hex[:8]
    dispatched = [row(run, shipment_id, "dispatch", 0, mode="rail", carrier_ref="PKP-1")]
    answer = await delivery.client.post(
        "/milestones/batch", json={"rows": dispatched}, headers=PLANNER
    )
    assert answer.json()["applied"] == 1, answer.text
    hub_rows = [
        row(run, shipment_id, "handover", 3, received_good=10, damaged=1, short=1),
        row(run, shipment_id, "arrive", 1),
        row(run, shipment_id, "inspect", 1.5, result="passed"),
        row(run, shipment_id, "depart", 2),
    ]
    answer = await delivery.client.post(
        "/milestones/batch", json={"rows": hub_rows}, headers=HUB_RZE
    )
    assert answer.json()["applied"] == 4, answer.text
    # A milestone to come is no fact yet: that row is refused, naming its `at`.
    ahead = row(run, shipment_id, "depart", 400 + 3)
    refused = await delivery.client.post(
        "/milestones/batch", json={"rows": [ahead]}, headers=HUB_RZE
    )
    (result,) = refused.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", 422), result
    assert [e["field"].rsplit(".", 1)[-1] for e in result["errors"]] == ["at"], result
    # A milestone sent alone is dated by the command (when it is recorded).
    received = await delivery.client.post(
        f"/shipments/{shipment_id}/receive", json={}, headers=auth("recipient")
    )
    assert received.status_code == 200, received.text

    await delivery.published(shipment_id, "shipment.received")
    records = sorted(
        (r for r in await read_topic(DELIVERIES, since) if r.key == shipment_id.encode()),
        key=lambda r: int(header(r, "ce_streamversion")),
    )
    occurred = {header(r, "ce_type"): header(r, "ce_occurredat") for r in records}
    time = {header(r, "ce_type"): header(r, "ce_time") for r in records}
    assert occurred["shipment.dispatched"] == at(0).isoformat()
    assert occurred["shipment.arrived_at_hub"] == at(1).isoformat()
    assert occurred["shipment.inspected"] == at(1.5).isoformat()
    assert occurred["shipment.handed_over"] == at(3).isoformat()
    # Recorded now; a follow-up (the plan) and the lone command occurred when recorded.
    assert time["shipment.handed_over"] > (OFFLINE + timedelta(days=300)).isoformat()
    assert occurred["shipment.planned"] == time["shipment.planned"]
    assert occurred["shipment.received"] == time["shipment.received"]

    topics = await Topics.fresh()
    await republish(topics.deliveries, records)
    async with projection_service(topics) as projection:
        seen: dict[str, Any] = {}

        async def projected() -> bool:
            answer = await projection.client.get(
                f"/shipments/{shipment_id}/timeline", headers=PLANNER
            )
            seen.update(answer.json() if answer.status_code == 200 else {})
            return (seen.get("shipment") or {}).get("status") == "received"

        await eventually(projected, what=f"{shipment_id} received in the projection")
        shipment = seen["shipment"]
        assert _instant(shipment["dispatched_at"]) == at(0)
        assert _instant(shipment["arrived_at"]) == at(1)
        assert _instant(shipment["handed_over_at"]) == at(3)
        assert _instant(shipment["received_at"]) > at(300)
        gaps = (await projection.client.get("/capabilities/gaps", headers=PLANNER)).json()
        points = [p for series in gaps["over_time"].values() for p in series if p["delivered"]]
        assert points[0] == {"day": at(3).date().isoformat(), "pledged": 0, "delivered": 10}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
