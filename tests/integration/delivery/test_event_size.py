"""The delivery service's commands stay within Kafka's message size by design (caps on serial
numbers at the command edge); an event above the limit is refused with 413 naming the field,
stores nothing, and the relay goes on publishing what follows."""

from __future__ import annotations

from typing import Any

import pytest

from services.delivery.schemas import MAX_SERIALS
from shared.contracts.topics import DELIVERIES
from shared.eventstore.store import OutboxRow
from shared.messaging import envelope
from tests.infra import eventually, header, read_topic
from tests.integration.delivery.conftest import (
    DONOR_DE,
    HUB_RZE,
    Delivery,
    serve,
)

ENHANCED = "AD-PATRIOT-PAC3"
PLANNED = "shipment.planned"
DEFAULT_LIMIT = envelope.kafka_limit(1_048_576, "/aidline/delivery")


def _serials(prefix: str, count: int) -> list[str]:
    """The longest serials there can be (100 characters, none that JSON escapes)."""
    return [f"{prefix}{i:05d}".ljust(100, "~") for i in range(count)]


async def _walk_to_the_hub_exit(delivery: Delivery, url: str) -> None:
    for step, body in (("arrive", None), ("inspect", {"result": "passed"}), ("depart", None)):
        response = await delivery.client.post(f"{url}/{step}", json=body, headers=HUB_RZE)
        assert response.status_code == 200, response.text


async def _outbox(delivery: Delivery, shipment_id: str) -> list[OutboxRow]:
    store = delivery.runtime.store
    async with store.db.engine.connect() as conn:
        rows = await store.read_outbox(conn, 0, 100_000)
    return [row for row in rows if row.stream_id == shipment_id]


async def _published_everything(delivery: Delivery) -> None:
    relay = delivery.runtime.relay
    assert relay is not None

    async def caught_up() -> bool:
        health = await relay.observe()
        return bool(health["ok"] and health["lag"] == 0)

    await eventually(caught_up, what="the relay to publish everything stored")


async def test_the_largest_handover_and_the_discrepancy_it_derives_fit_in_one_message(
    delivery: Delivery,
) -> None:
    shipment_id = await delivery.plan(item_code=ENHANCED, quantity=MAX_SERIALS)
    url, post = f"/shipments/{shipment_id}", delivery.client.post
    dispatch = {"mode": "air", "carrier_ref": "USAF-1", "serials": _serials("D", MAX_SERIALS)}
    assert (await post(f"{url}/dispatch", json=dispatch, headers=DONOR_DE)).status_code == 200
    await _walk_to_the_hub_exit(delivery, url)
    # Every serial given is unknown and every dispatched one missing: the largest discrepancy.
    handover = {"received_good": MAX_SERIALS, "damaged": 0, "short": 0,
                "serials": _serials("H", MAX_SERIALS)}  # fmt: skip
    assert (await post(f"{url}/handover", json=handover, headers=HUB_RZE)).status_code == 200

    sizes = {row.event_type: envelope.record_size(row, "/aidline/delivery")
             for row in await _outbox(delivery, shipment_id)}  # fmt: skip
    assert max(sizes.values()) == sizes["shipment.eum_discrepancy"]
    assert 1_000_000 < sizes["shipment.eum_discrepancy"] <= DEFAULT_LIMIT.max_bytes
    await _published_everything(delivery)
    on_kafka = [r for r in await read_topic(DELIVERIES) if r.key == shipment_id.encode()]
    assert {header(r, "ce_type") for r in on_kafka} == set(sizes)


@pytest.mark.parametrize(
    ("serials", "field"),
    [
        (_serials("D", MAX_SERIALS + 1), "body.serials"),
        (["SN-1", "SN-é"], "body.serials.1"),
        (['SN-"1"'], "body.serials.0"),
        (["S" * 101], "body.serials.0"),
    ],
)
async def test_serials_beyond_the_caps_are_a_422_naming_the_field(
    delivery: Delivery, serials: list[str], field: str
) -> None:
    shipment_id = await delivery.plan()
    body = {"mode": "road", "carrier_ref": "T-1", "serials": serials}
    response = await delivery.client.post(
        f"/shipments/{shipment_id}/dispatch", json=body, headers=DONOR_DE
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_an_oversized_command_is_refused_naming_the_field_and_what_follows_is_published(
    backend: str, kafka: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A service whose Kafka takes 64 KiB per message: a dispatch of 1,000 long serials
    (~104 kB) is refused with 413, the commands around it are acknowledged, stored and
    published; acknowledged = stored = on Kafka."""
    async with serve(backend, kafka, tmp_path_factory, kafka_max_message_bytes=65_536) as delivery:
        shipments = [await delivery.plan(quantity=1000) for _ in range(3)]
        acknowledged = dict.fromkeys(shipments, 0)

        async def command(shipment_id: str, step: str, body: dict[str, Any] | None) -> int:
            headers = DONOR_DE if step == "dispatch" else HUB_RZE
            response = await delivery.client.post(
                f"/shipments/{shipment_id}/{step}", json=body, headers=headers
            )
            if response.status_code == 200:
                acknowledged[shipment_id] += 1
            return response.status_code

        small = {"mode": "road", "carrier_ref": "T-1", "serials": _serials("S", 10)}
        large = {"mode": "road", "carrier_ref": "T-2", "serials": _serials("L", 1000)}
        assert await command(shipments[0], "dispatch", small) == 200
        refused = await delivery.client.post(
            f"/shipments/{shipments[1]}/dispatch", json=large, headers=DONOR_DE
        )
        assert refused.status_code == 413, refused.text
        problem = refused.json()
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in problem["errors"]] == ["serials"]
        assert "Nothing was stored" in problem["detail"]
        # What follows: the refused shipment's own next command and the others'.
        assert await command(shipments[1], "dispatch", small) == 200
        assert await command(shipments[2], "dispatch", small) == 200
        for shipment_id in shipments:
            assert await command(shipment_id, "arrive", None) == 200

        await _published_everything(delivery)
        # The commands' events (`shipment.planned` comes from the allocation, and every delivery
        # service of the test session running at the time plans the shipment in its own store).
        stored = {s: [r for r in await _outbox(delivery, s) if r.event_type != PLANNED]
                  for s in shipments}  # fmt: skip
        on_kafka: dict[str, set[str]] = {s: set() for s in shipments}
        for record in await read_topic(DELIVERIES):
            subject = header(record, "ce_subject")
            if subject in on_kafka and header(record, "ce_type") != PLANNED:
                on_kafka[subject].add(header(record, "ce_id"))
        for shipment_id in shipments:
            ids = {str(row.event_id) for row in stored[shipment_id]}
            assert len(ids) == acknowledged[shipment_id] == len(on_kafka[shipment_id])
            assert ids == on_kafka[shipment_id]
        types = [r.event_type for r in stored[shipments[1]]]
        assert types == ["shipment.dispatched", "shipment.arrived_at_hub"]
