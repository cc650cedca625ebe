"""Deliveries from `aidline.deliveries` are recorded against requirements exactly once."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from aiokafka.structs import RecordMetadata

from services.request.consumers import NAME
from shared.contracts import deliveries
from shared.contracts.deliveries import ShipmentHandedOver, ShipmentPlanned, ShipmentReceived
from shared.contracts.topics import DELIVERIES
from shared.domain import DomainEvent, Metadata, StoredEvent
from shared.eventstore.tables import consumer_offsets
from tests.infra import eventually, produce, stored_event
from tests.integration.request.conftest import FORUM, RECIPIENT, Service

RECEIVER = Metadata(actor="recipient-kyiv", correlation_id="receipt-1")


def shipment_event(shipment_id: str, version: int, event: DomainEvent) -> StoredEvent:
    new = deliveries.encode(event, RECEIVER)
    return stored_event(shipment_id, version, new.data, event_type=new.event_type, meta=RECEIVER)


def planned(shipment_id: str, requirement_id: str, quantity: int) -> StoredEvent:
    return shipment_event(
        shipment_id,
        1,
        ShipmentPlanned(
            shipment_id=shipment_id,
            allocation_id=f"ALC-{shipment_id}",
            requirement_id=requirement_id,
            pledge_id="PLG-X",
            donor="PL",
            item_code="ART-155-HE",
            quantity=quantity,
            hub="PL-RZE",
            handover_point="Korczowa-Krakovets",
        ),
    )


async def _consumed_past(svc: Service, landed: list[RecordMetadata]) -> bool:
    """Has the service's consumer stored offsets past every message we produced?"""
    wanted = {m.partition: m.offset for m in landed}
    async with svc.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(consumer_offsets).where(
                consumer_offsets.c.topic == DELIVERIES,
                consumer_offsets.c.consumer.endswith(NAME),
            )
        )
        stored = {r.partition: r.next_offset for r in rows}
    return all(stored.get(p, 0) > offset for p, offset in wanted.items())


async def test_deliveries_are_recorded_once_and_fulfil_the_requirement(service: Service) -> None:
    requirement_id = await service.submit(quantity=100)
    await service.post(f"/requirements/{requirement_id}/endorse", {}, FORUM)
    tag = uuid.uuid4().hex[:8].upper()
    first, second = f"SHP-{tag}A", f"SHP-{tag}B"
    received = shipment_event(first, 3, ShipmentReceived())
    landed = await produce(
        DELIVERIES,
        [
            planned(first, requirement_id, 60),
            shipment_event(first, 2, ShipmentHandedOver(received_good=50, damaged=10, short=0)),
            received,
            received,  # the same event delivered twice (same ce_id)
            shipment_event(first, 4, ShipmentReceived()),  # a second receipt of the shipment
            planned(second, requirement_id, 50),
            shipment_event(second, 2, ShipmentReceived()),  # no hand-over seen: planned quantity
        ],
    )
    await eventually(lambda: _consumed_past(service, landed), what="the deliveries consumed")

    # The recipient sees which shipment each record names (the forum sees totals only).
    history = (
        await service.client.get(f"/streams/{requirement_id}/events", headers=RECIPIENT)
    ).json()
    types = [e["type"] for e in history["events"]]
    assert types == [
        "requirement.submitted",
        "requirement.endorsed",
        "requirement.delivery_recorded",
        "requirement.delivery_recorded",
        "requirement.fulfilled",
    ]
    # The two shipments may sit in different partitions: their order is not defined.
    recorded = {
        e["data"]["shipment_id"]: e
        for e in history["events"]
        if e["type"] == "requirement.delivery_recorded"
    }
    assert {k: e["data"]["quantity"] for k, e in recorded.items()} == {first: 50, second: 50}
    assert recorded[first]["actor"] == "recipient-kyiv"
    assert recorded[first]["correlation_id"] == "receipt-1"
    assert recorded[first]["causation_id"] == str(received.event_id)
    requirement = (
        await service.client.get(f"/requirements/{requirement_id}", headers=FORUM)
    ).json()
    assert (requirement["status"], requirement["delivered"]) == ("fulfilled", 100)
