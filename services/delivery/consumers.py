"""What the delivery service does with other services' events.

`aidline.allocations`: proposals are remembered (approvals carry no details), approvals become
planned shipments, cancellations cancel shipments that have not left (or record the refusal).
`aidline.requests`: `pledge.announced` says whose pledge it is (the shipment's donor) and
`catalogue.item_added` gives new items' end-use-monitoring class; either may release approved
allocations that were waiting for it.
"""

from __future__ import annotations

from services.delivery import handlers, tables
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationCancelled,
    AllocationProposed,
    AllocationRejected,
)
from shared.contracts.allocations import registry as allocations
from shared.contracts.requests import CatalogueItemAdded, PledgeAnnounced
from shared.contracts.requests import registry as requests
from shared.contracts.topics import ALLOCATIONS, REQUESTS
from shared.domain import EventRegistry
from shared.eventstore import Transaction
from shared.messaging.consumer import Message
from shared.runtime import ConsumerSpec

TOPICS = (ALLOCATIONS, REQUESTS)
ACTOR = "delivery-service"

_REGISTRIES: dict[str, EventRegistry] = {ALLOCATIONS: allocations, REQUESTS: requests}
HANDLED = {
    AllocationProposed.TYPE,
    AllocationApproved.TYPE,
    AllocationRejected.TYPE,
    AllocationCancelled.TYPE,
    PledgeAnnounced.TYPE,
    CatalogueItemAdded.TYPE,
}


async def handle(tx: Transaction, message: Message) -> None:
    envelope = message.event
    event = _REGISTRIES[message.topic].decode(
        envelope.event_type, envelope.schema_version, envelope.data
    )
    meta = message.follow_up(ACTOR)
    allocation_id = envelope.subject
    match event:
        case AllocationProposed():
            await tables.record_proposal(tx.conn, event)
        case AllocationApproved():
            await handlers.plan_approved(tx, allocation_id, meta)
        case AllocationRejected():
            known = await tables.find_allocation(tx.conn, allocation_id)
            if known is not None and known.status == "proposed":
                await tables.set_allocation_status(tx.conn, allocation_id, "rejected")
        case AllocationCancelled():
            await handlers.cancel_for_allocation(tx, allocation_id, event.reason, meta)
        case PledgeAnnounced():
            await tables.record_pledge(tx.conn, event.pledge_id, event.donor)
            await handlers.plan_waiting(tx, meta, pledge_id=event.pledge_id)
        case CatalogueItemAdded():
            await tables.record_item(tx.conn, event.item_code, event.eum_class)
            await handlers.plan_waiting(tx, meta, item_code=event.item_code)


CONSUMERS: list[ConsumerSpec] = [ConsumerSpec("delivery", TOPICS, handle, event_types=HANDLED)]
