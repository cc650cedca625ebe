"""A command's correlation id follows it across services: an event a consumer appends in answer
to another carries that event's correlation id, and the event itself as its cause."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import replace

from shared.db import Database
from shared.domain import Metadata, NewEvent
from shared.eventstore import EventStore, Transaction
from shared.messaging.consumer import EventConsumer, Message
from shared.observability import context
from tests.infra import create_topic, eventually, produce, stored_event


async def test_events_appended_by_a_consumer_carry_the_incoming_correlation_id(
    kafka: str, db: Database
) -> None:
    topic = await create_topic(partitions=1)
    seen: list[str | None] = []

    async def react(tx: Transaction, message: Message) -> None:
        seen.append(context.correlation_id())
        tx.append(f"reaction-{message.event.subject}", 0, [NewEvent("test.reacted", 1, {})])

    with_id = replace(stored_event("S-1", 1, {"amount": 1}), meta=Metadata("ua-mod", "corr-1"))
    without_id = stored_event("S-2", 1, {"amount": 2})
    await produce(topic, [with_id, without_id])

    store = EventStore(db)
    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], react, store, bootstrap_servers=kafka
    )
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _applied(consumer, 2), what="both events applied")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async with db.engine.connect() as conn:
        first = (await store.read_stream(conn, "reaction-S-1"))[0].meta
        second = (await store.read_stream(conn, "reaction-S-2"))[0].meta
    assert (first.correlation_id, first.causation_id) == ("corr-1", str(with_id.event_id))
    # An event without a correlation id starts one: its own id.
    root = str(without_id.event_id)
    assert (second.correlation_id, second.causation_id) == (root, root)
    assert seen == ["corr-1", root]
    assert context.correlation_id() is None


async def _applied(consumer: EventConsumer, count: int) -> bool:
    return consumer.applied >= count
