"""No event Kafka would refuse is ever stored: the store measures each event as the relay will
send it (the envelope as a record batch of its own) against KAFKA_MAX_MESSAGE_BYTES."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from shared.db import Database
from shared.domain import Metadata, NewEvent, TooLarge
from shared.eventstore import EventStore
from shared.eventstore.store import MAX_POSITION, OutboxRow
from shared.messaging import envelope
from shared.messaging.relay import Relay
from tests.infra import create_topic, eventually, header, read_topic

META = Metadata(actor="tester")
SOURCE = "/aidline/test"
LIMIT = envelope.kafka_limit(1_048_576, SOURCE)  # the default setting


def _event(characters: int) -> NewEvent:
    return NewEvent("ledger.noted", 1, {"serials": ["s" * characters], "mode": "air"}, META)


def _size(store: EventStore, stream_id: str, event: NewEvent) -> int:
    """The event's size as Kafka will see it, measured here independently of the store."""
    row = OutboxRow(MAX_POSITION, stream_id, 1, event.event_id, event.event_type, 1,
                    datetime.now(UTC).replace(microsecond=1), store.log.payload_text(event.data),
                    META.actor, None, None)  # fmt: skip
    return envelope.record_size(row, SOURCE)


async def _head(store: EventStore) -> int:
    async with store.db.engine.connect() as conn:
        return await store.head_position(conn)


async def test_the_largest_event_is_stored_and_published_one_byte_more_is_refused(
    kafka: str, db: Database
) -> None:
    store = EventStore(db, size_limit=LIMIT)
    # One character more is one byte more (at this size, the varint lengths stay 3 bytes).
    base = _size(store, "S-1", _event(1_000_000)) - 1_000_000
    largest = _event(LIMIT.max_bytes - base)
    assert _size(store, "S-1", largest) == LIMIT.max_bytes
    await store.append("S-1", 0, [largest])

    with pytest.raises(TooLarge) as refused:
        async with store.transaction() as tx:
            tx.append("S-2", 0, [NewEvent("ledger.noted", 1, {"mode": "air"}, META)])
            tx.append("S-3", 0, [_event(LIMIT.max_bytes - base + 1)])
    assert refused.value.errors[0][0] == "serials", "the field responsible is named"
    assert str(LIMIT.max_bytes) in str(refused.value)
    assert await _head(store) == 1, "nothing of the refused unit was stored"

    # Kafka (the producer's and the broker's default limits) takes the largest accepted one.
    topic = await create_topic(partitions=1)
    relay = Relay(store, topic=topic, source=SOURCE, bootstrap_servers=kafka,
                  producer_options={"max_request_size": 1_048_576})  # fmt: skip
    running = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _published(relay), what="the largest event on Kafka")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    (record,) = await read_topic(topic)
    assert header(record, "ce_id") == str(largest.event_id)


async def test_an_event_of_non_ascii_text_is_measured_as_the_backend_stores_it(
    db: Database,
) -> None:
    """SQLite's outbox \\u-escapes non-ASCII characters (6 bytes for é), PostgreSQL's does not
    (2): the same event may fit on one and not on the other."""
    store = EventStore(db, size_limit=envelope.kafka_limit(200_000, SOURCE))
    event = NewEvent("ledger.noted", 1, {"note": "é" * 60_000}, META)
    if db.dialect.name == "sqlite":
        with pytest.raises(TooLarge):
            await store.append(f"S-{uuid.uuid4().hex[:6]}", 0, [event])
        assert await _head(store) == 0
    else:
        await store.append("S-1", 0, [event])
        assert await _head(store) == 1


async def _published(relay: Relay) -> bool:
    return relay.position >= 1
