"""What the request service takes from `aidline.deliveries`: deliveries against requirements.

`shipment.received` (the recipient confirms receipt) names only the shipment, so the consumer
keeps, per shipment, the requirement and planned quantity from `shipment.planned` and the
quantity received in good condition from `shipment.handed_over`. On receipt it records
`requirement.delivery_recorded` with that good quantity (the planned quantity if no hand-over
was seen) and `requirement.fulfilled` once the requirement's deliveries reach its quantity.

Exactly once: the consumer loop skips an event it already applied (same ce_id), and the
requirement records each shipment once, so even a second `shipment.received` for the same
shipment has no second effect.
"""

from __future__ import annotations

import logging

from services.request import tables
from services.request.domain import requirement as requirement_ids
from services.request.handlers import requirements
from shared.contracts import deliveries
from shared.contracts.deliveries import ShipmentHandedOver, ShipmentPlanned, ShipmentReceived
from shared.eventstore import Transaction
from shared.messaging import topics
from shared.messaging.consumer import Message
from shared.runtime import ConsumerSpec

log = logging.getLogger(__name__)

NAME = "request.deliveries"
HANDLED = {ShipmentPlanned.TYPE, ShipmentHandedOver.TYPE, ShipmentReceived.TYPE}


async def handle(tx: Transaction, message: Message) -> None:
    event = message.event
    data = deliveries.decode(event.event_type, event.schema_version, event.data)
    match data:
        case ShipmentPlanned():
            await tables.plan_shipment(
                tx.conn, data.shipment_id, data.requirement_id, data.quantity
            )
        case ShipmentHandedOver():
            await tables.record_hand_over(tx.conn, event.subject, data.received_good)
        case ShipmentReceived():
            await _received(tx, message)


async def _received(tx: Transaction, message: Message) -> None:
    event = message.event
    shipment = await tables.planned_shipment(tx.conn, event.subject)
    if shipment is None:
        log.warning("shipment %s was received but never planned; ignored", event.subject)
        return
    requirement = None
    if shipment.requirement_id.startswith(f"{requirement_ids.PREFIX}-"):
        requirement = await requirements.get(tx, shipment.requirement_id)
    if requirement is None:
        log.warning(
            "shipment %s delivered to unknown requirement %s; ignored",
            event.subject,
            shipment.requirement_id,
        )
        return
    quantity = shipment.quantity if shipment.received_good is None else shipment.received_good
    if requirement.record_delivery(event.subject, quantity):
        # Recorded in the name of whoever confirmed the receipt, caused by that event, and
        # dated when the receipt happened: it restates that fact on the requirement.
        requirements.save(tx, requirement, message.follow_up(event.meta.actor, restates=True))


CONSUMERS: list[ConsumerSpec] = [
    ConsumerSpec(NAME, [topics.DELIVERIES], handle, event_types=HANDLED),
]
