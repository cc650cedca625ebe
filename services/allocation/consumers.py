"""What the allocation service does with the request and delivery services' events.

Each event updates the service's own tables and, when it changes what can be matched, re-plans
the item family it touches (incremental: only that family) — all in the consumer's transaction,
together with the record that the event was processed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.allocation import tables
from services.allocation.planning import Planning
from shared.contracts import deliveries, requests
from shared.contracts.deliveries import ShipmentLost, ShipmentPlanned
from shared.contracts.requests import (
    CatalogueItemAdded,
    PledgeAnnounced,
    PledgeConfirmed,
    PledgeReduced,
    PledgeWithdrawn,
    RequirementAmended,
    RequirementCancelled,
    RequirementEndorsed,
    RequirementFulfilled,
    RequirementSubmitted,
)
from shared.contracts.topics import DELIVERIES, REQUESTS
from shared.domain import DomainEvent
from shared.eventstore import Transaction
from shared.messaging.consumer import BatchHandler, Message
from shared.runtime import ConsumerSpec

log = logging.getLogger(__name__)

CONSUMER = "allocation-planner"
ACTOR = "allocation-planner"

# (item code whose family to re-plan, cause) or None when matching is not affected.
Change = tuple[str, str] | None


def consumers(planning: Planning) -> list[ConsumerSpec]:
    """The service's consumers: one, the planner's, re-planning with `planning`."""
    return [ConsumerSpec(CONSUMER, [REQUESTS, DELIVERIES], batch_handler=handler(planning))]


def handler(planning: Planning) -> BatchHandler:
    """A batch of events: every state change first, then one re-plan of each family touched
    (a family re-planned once per batch, not once per event, is what keeps a catch-up fast).

    A family's new events follow up the last event that changed it (its causation id, and its
    correlation id kept), not merely the batch's last event, which may be another family's."""

    async def handle(tx: Transaction, messages: Sequence[Message]) -> None:
        causes: dict[str, list[str]] = {}
        trigger: dict[str, Message] = {}
        for message in messages:
            change = await _apply(tx.conn, message)
            if change is not None:
                item_code, cause = change
                causes.setdefault(item_code, []).append(cause)
                trigger[item_code] = message
        for item_code, item_causes in causes.items():
            last = trigger[item_code]
            await planning.replan(
                tx,
                [item_code],
                cause=_summary(item_causes),
                seed=f"{last.event.event_id}/{item_code}",
                meta=last.follow_up(ACTOR),
            )

    return handle


async def _apply(conn: AsyncConnection, message: Message) -> Change:
    envelope = message.event
    if message.topic == REQUESTS and envelope.event_type in requests:
        event = requests.decode(envelope.event_type, envelope.schema_version, envelope.data)
        return await _on_request(conn, envelope.subject, event)
    if message.topic == DELIVERIES and envelope.event_type in deliveries:
        event = deliveries.decode(envelope.event_type, envelope.schema_version, envelope.data)
        return await _on_delivery(conn, envelope.subject, event)
    return None


def _summary(causes: list[str]) -> str:
    if len(causes) == 1:
        return causes[0]
    return f"{len(causes)} changes, the last: {causes[-1]}"


async def _on_request(conn: AsyncConnection, subject: str, event: DomainEvent) -> Change:
    match event:
        case RequirementSubmitted():
            await tables.add_requirement(
                conn,
                event.requirement_id,
                item_code=event.item_code,
                quantity=event.quantity,
                priority=event.priority,
                needed_by=event.needed_by,
                destination=event.destination,
                status="submitted",
            )
            return None
        case RequirementEndorsed(priority=priority, decision_id=decision_id):
            values = {"status": "endorsed", "priority": priority, "decision_id": decision_id}
            return await _requirement(conn, subject, values, "endorsed", only_open=True)
        case RequirementAmended():
            values = {
                name: value
                for name, value in (
                    ("quantity", event.quantity),
                    ("priority", event.priority),
                    ("needed_by", event.needed_by),
                )
                if value is not None
            }
            return await _requirement(conn, subject, values, "amended", only_open=True)
        case RequirementCancelled(reason=reason):
            values = {"status": "cancelled", "status_reason": reason}
            return await _requirement(conn, subject, values, "cancelled", only_open=True)
        case RequirementFulfilled():
            return await _requirement(conn, subject, {"status": "fulfilled"}, "fulfilled")
        case PledgeAnnounced():
            await tables.add_pledge(
                conn,
                event.pledge_id,
                donor=event.donor,
                item_code=event.item_code,
                quantity=event.quantity,
                available_from=event.available_from,
                status="announced",
            )
            return None
        case PledgeConfirmed(decision_id=decision_id):
            values = {"status": "confirmed", "decision_id": decision_id}
            return await _pledge(conn, subject, values, "confirmed")
        case PledgeReduced(quantity=quantity):
            return await _pledge(conn, subject, {"quantity": quantity}, f"reduced to {quantity}")
        case PledgeWithdrawn(reason=reason):
            values = {"status": "withdrawn", "status_reason": reason}
            return await _pledge(conn, subject, values, "withdrawn")
        case CatalogueItemAdded():
            values = {
                "name": event.name,
                "capability": event.capability,
                "unit": event.unit,
                "eum_class": event.eum_class,
                "substitutes": list(event.substitutes),
            }
            await tables.save_catalogue_item(conn, event.item_code, values)
            return event.item_code, f"catalogue item {event.item_code} added"
    return None  # delivery recorded and the like: no effect on matching


async def _on_delivery(conn: AsyncConnection, subject: str, event: DomainEvent) -> Change:
    match event:
        case ShipmentPlanned():
            if await tables.allocation_item(conn, event.allocation_id) is None:
                log.warning("shipment %s is for allocation %s, unknown here; ignored",
                            event.shipment_id, event.allocation_id)  # fmt: skip
                return None
            await tables.add_shipment(
                conn,
                event.shipment_id,
                allocation_id=event.allocation_id,
                quantity=event.quantity,
            )
        case ShipmentLost(quantity=quantity, reason=reason):
            return await _lost(conn, subject, quantity, reason)
    return None


async def _lost(conn: AsyncConnection, shipment_id: str, quantity: int, reason: str) -> Change:
    """Units lost in transit no longer cover the requirement and are gone from the pledge."""
    shipment = await tables.shipment(conn, shipment_id)
    if shipment is None:
        log.warning("shipment %s lost, but it was never planned here; ignored", shipment_id)
        return None
    lost = min(quantity, int(shipment.quantity) - int(shipment.lost))
    if lost <= 0:
        return None
    item_code = await tables.add_loss(conn, shipment_id, shipment.allocation_id, lost)
    if item_code is None:
        log.warning(
            "shipment %s lost, but allocation %s is unknown", shipment_id, shipment.allocation_id
        )
        return None
    return item_code, f"shipment {shipment_id} lost {lost}: {reason}"


async def _requirement(
    conn: AsyncConnection,
    requirement_id: str,
    values: dict[str, Any],
    what: str,
    *,
    only_open: bool = False,
) -> Change:
    item_code = await tables.update_requirement(conn, requirement_id, values, only_open=only_open)
    if item_code is None:
        log.warning(
            "requirement %s %s, but it is unknown or closed here; ignored", requirement_id, what
        )
        return None
    return item_code, f"requirement {requirement_id} {what}"


async def _pledge(
    conn: AsyncConnection, pledge_id: str, values: dict[str, Any], what: str
) -> Change:
    item_code = await tables.update_pledge(conn, pledge_id, values)
    if item_code is None:
        log.warning("pledge %s %s, but it is unknown or withdrawn here; ignored", pledge_id, what)
        return None
    return item_code, f"pledge {pledge_id} {what}"
