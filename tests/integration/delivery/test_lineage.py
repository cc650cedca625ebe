"""A forum decision followed to the shipment (issue 17 item 1), over the real broker and
databases: the allocation consumer plans from `requirement.endorsed` / `pledge.confirmed`, its
events go onto `aidline.allocations`, the running delivery service plans the shipment. The
decisions' ids reach `shipment.planned`, and each follow-up names its cause and keeps the
meeting's correlation id."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from services.allocation import consumers
from services.allocation.app import MIGRATIONS
from services.allocation.planning import Planning
from services.allocation.settings import AllocationSettings
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import StoredEvent
from shared.eventstore import EventStore
from tests.infra import POSTGRES_URL, header, produce, read_topic, unique_schema
from tests.integration.allocation_support import Scenario, message
from tests.integration.delivery.conftest import Delivery

TANK = "ARM-LEO2A4"  # a base catalogue item: the delivery service knows its EUM class


@pytest.fixture
async def allocation_store() -> AsyncIterator[EventStore]:
    db = Database(POSTGRES_URL, unique_schema())
    await upgrade(db, MIGRATIONS)
    yield EventStore(db)
    await db.drop_schema()
    await db.dispose()


async def _plan(store: EventStore, events: list[StoredEvent]) -> list[StoredEvent]:
    """Feed the allocation consumer (auto-approving) one event at a time; its stored events."""
    handle = consumers.handler(Planning(AllocationSettings(auto_approve=True)))
    for event in events:
        async with store.transaction() as tx:
            await handle(tx, [message(event)])
    async with store.db.engine.connect() as conn:
        return await store.read_after(conn, 0, 1000)


@pytest.mark.parametrize("donor_known", ["before the approval", "after the approval"])
async def test_a_decision_reaches_the_shipment_and_each_step_names_its_cause(
    delivery: Delivery, allocation_store: EventStore, donor_known: str
) -> None:
    s = Scenario(correlation_id=f"meeting-{uuid.uuid4().hex[:8]}")
    endorsed = s.requirement("R1", 10, 2, item=TANK, decision="DEC-1")
    announced, confirmed = s.pledge("P1", 10, item=TANK, decision="DEC-2")

    stored = await _plan(allocation_store, [*endorsed, announced, confirmed])
    proposed, approved = (e for e in stored if e.event_type.startswith("allocation."))
    assert (proposed.event_type, approved.event_type) == (
        "allocation.proposed",
        "allocation.approved",
    )
    assert (proposed.data["endorsed_by_decision"], proposed.data["confirmed_by_decision"]) == (
        "DEC-1",
        "DEC-2",
    )
    for follow_up in (proposed, approved):  # the confirmation triggered the plan
        assert follow_up.meta.causation_id == str(confirmed.event_id)
        assert follow_up.meta.correlation_id == s.correlation_id

    # The shipment waits for its pledge's donor when the approval comes first: planned later,
    # it is still the approval's follow-up.
    if donor_known == "before the approval":
        await produce(REQUESTS, [announced])
        await produce(ALLOCATIONS, [proposed, approved])
    else:
        await produce(ALLOCATIONS, [proposed, approved])
        await delivery.caught_up(ALLOCATIONS)
        await produce(REQUESTS, [announced])

    shipment_id = f"SHP-{proposed.stream_id}"
    await delivery.published(shipment_id, "shipment.planned")
    (planned,) = [
        r
        for r in await read_topic(DELIVERIES)
        if r.key == shipment_id.encode() and header(r, "ce_type") == "shipment.planned"
    ]
    assert header(planned, "ce_schemaversion") == "2"
    assert header(planned, "ce_causationid") == str(approved.event_id)
    assert header(planned, "ce_correlationid") == s.correlation_id
    assert planned.value is not None
    data = json.loads(planned.value)
    assert (data["endorsed_by_decision"], data["confirmed_by_decision"]) == ("DEC-1", "DEC-2")
    assert (data["allocation_id"], data["requirement_id"]) == (proposed.stream_id, s.id("R1"))
