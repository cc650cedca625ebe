"""The consumer under infrastructure faults: dead letters published only after their batch
committed (once, and not lost when the process dies in between), no lock held while Kafka is
slow, a database that drops the consumer's connection mid-batch (nothing dead-lettered, every
event applied once), and a Kafka client that stops delivering (replaced, nothing lost)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.domain.events import NewEvent
from shared.eventstore import EventStore, Transaction
from shared.eventstore.tables import dead_letters, events
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.consumer import loop as consumer_loop
from shared.messaging.kafka import Cluster, new_consumer, new_producer
from shared.messaging.topics import dlq_topic
from tests.infra import create_topic, eventually, header, produce, read_topic, stored_event
from tests.integration.test_consumer import Poison, _effects, _handler, _running
from tests.integration.worker import effects

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


class _GatedProducer:
    """A dead-letter producer whose sends wait for `gate` (a broker that does not answer), or
    fail while `failing` (a broker that refuses)."""

    def __init__(self, bootstrap_servers: Cluster) -> None:
        self.real = new_producer(bootstrap_servers)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.failing = False

    async def start(self) -> None:
        await self.real.start()

    async def stop(self) -> None:
        await self.real.stop()

    async def send_and_wait(self, topic: str, **kw: Any) -> Any:
        if self.failing:
            raise ConnectionError("the broker is away")
        self.waiting.set()
        await self.gate.wait()
        return await self.real.send_and_wait(topic, **kw)


def _consumer(db: Database, topic: str, group: str, handler: Any = _handler) -> EventConsumer:
    return EventConsumer(
        group, [topic], handler, EventStore(db), bootstrap_servers=KAFKA,
        retry_backoff_seconds=0.01,
    )  # fmt: skip


async def _prepare(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)


async def _held(db: Database) -> int:
    """Dead letters not published yet."""
    async with db.engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.select(sa.func.count()).where(dead_letters.c.published_at.is_(None))
            )
        )


async def _dead(consumer: EventConsumer, count: int) -> bool:
    return consumer.dead_lettered >= count


async def test_a_command_answers_while_a_dead_letter_publish_hangs(
    kafka: str, db: Database
) -> None:
    """The batch appends events (taking the store's commit-order lock) and dead-letters one
    message; Kafka never answers the dead letter. Meanwhile the service's commands append."""
    topic = await create_topic(partitions=1)
    await produce(
        topic, [stored_event(f"S-{i}", 1, {"amount": 666 if i == 2 else i}) for i in range(4)]
    )
    await _prepare(db)
    store = EventStore(db)

    async def echo(tx: Transaction, message: Message) -> None:
        if message.event.data["amount"] == 666:
            raise Poison("never")
        tx.append(f"echo-{message.event.subject}", 0, [NewEvent("echo.made", 1, {})])

    consumer = _consumer(db, topic, f"g{uuid.uuid4().hex[:8]}", echo)
    gated: list[_GatedProducer] = []

    def gated_producer(servers: Cluster) -> _GatedProducer:
        gated.append(_GatedProducer(servers))
        return gated[-1]

    consumer.dead_letters.new_producer = gated_producer
    async with _running(consumer):
        await eventually(
            lambda: _is_set(gated, "waiting"), timeout=90, what="the dead letter's publish"
        )
        # The batch has committed (its events are in), the publish hangs: a command appends.
        command = store.append(f"cmd-{uuid.uuid4().hex[:6]}", 0, [NewEvent("made", 1, {})])
        stored = await asyncio.wait_for(command, timeout=5)
        assert stored[0].position > 0
        async with db.engine.connect() as conn:
            echoes = await conn.scalar(
                sa.select(sa.func.count()).where(events.c.stream_id.like("echo-%"))
            )
        assert echoes == 3
        assert await _held(db) == 1, "held in the database until Kafka has it"
        gated[0].gate.set()
        await eventually(
            lambda: _dead(consumer, 1), timeout=90, what="the dead letter to be published"
        )
    assert await _held(db) == 0
    dead = await read_topic(dlq_topic(topic, consumer.name))
    assert [header(d, "dlq_original_offset") for d in dead] == ["2"]


async def _is_set(gated: list[_GatedProducer], name: str) -> bool:
    return bool(gated) and getattr(gated[-1], name).is_set()


async def test_a_batch_rolled_back_after_its_dead_letter_publishes_it_once(
    kafka: str, db: Database
) -> None:
    """The batch decides a dead letter, then fails to commit (the database went away): it is
    applied again, and the dead letter reaches the topic once."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event("S-1", 1, {"amount": 1}), b"not a CloudEvent"])
    await _prepare(db)
    consumer = _consumer(db, topic, f"g{uuid.uuid4().hex[:8]}")
    save_offsets = consumer.tracker.save_offsets
    failures = 0

    async def failing_once(conn: AsyncConnection, offsets: Mapping[TopicPartition, int]) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise ConnectionResetError("the database went away before the commit")
        await save_offsets(conn, offsets)

    consumer.tracker.save_offsets = failing_once  # type: ignore[method-assign,assignment]
    async with _running(consumer):
        await eventually(lambda: _dead(consumer, 1), timeout=90, what="the dead letter")
    assert failures == 1
    assert await _effects(db) == (1, 1)
    dead = await read_topic(dlq_topic(topic, consumer.name))
    assert [header(d, "dlq_error_type") for d in dead] == ["EnvelopeError"]
    assert await _held(db) == 0


async def test_a_dead_letter_held_when_the_process_died_is_published_at_start(
    kafka: str, db: Database
) -> None:
    """The batch committed, Kafka refused the dead letter, the process stopped: the next start
    publishes it, once."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event("S-1", 1, {"amount": 666})])
    await _prepare(db)
    group = f"g{uuid.uuid4().hex[:8]}"
    first = _consumer(db, topic, group)
    refusing: list[_GatedProducer] = []

    def refusing_producer(servers: Cluster) -> _GatedProducer:
        producer = _GatedProducer(servers)
        producer.failing = True
        refusing.append(producer)
        return producer

    first.dead_letters.new_producer = refusing_producer
    async with _running(first):
        # A consumer's first join waits for the group coordinator: on a busy machine past 30 s.
        await eventually(lambda: _held_at_least(db, 1), 90, "the dead letter to be held")
    assert await read_topic(dlq_topic(topic, group)) == []

    second = _consumer(db, topic, group)
    async with _running(second):
        await eventually(lambda: _held_none(db), 90, "the held dead letter to be published")
        assert second.applied == 0, "its message was not applied again"
    dead = await read_topic(dlq_topic(topic, group))
    assert len(dead) == 1
    assert header(dead[0], "dlq_error_type") == "Poison"
    assert header(dead[0], "dlq_id")


async def _held_at_least(db: Database, count: int) -> bool:
    return await _held(db) >= count


async def _held_none(db: Database) -> bool:
    return await _held(db) == 0


async def test_a_terminated_connection_mid_batch_is_retried_never_dead_lettered(
    kafka: str, pg_db: Database
) -> None:
    """PostgreSQL terminates the consumer's backend (pg_terminate_backend, 57P01) in the middle
    of a batch, twice: the batch is applied again each time, nothing goes to the dead-letter
    topic, every event is applied once."""
    topic = await create_topic(partitions=1)
    total = 30
    await produce(topic, [stored_event(f"S-{i}", 1, {"amount": i}) for i in range(1, total + 1)])
    await _prepare(pg_db)
    terminated = 0

    async def handler(tx: Transaction, message: Message) -> None:
        nonlocal terminated
        if message.event.data["amount"] == 7 and terminated < 2:
            terminated += 1
            pid = await tx.conn.scalar(sa.text("SELECT pg_backend_pid()"))
            async with pg_db.engine.connect() as other:
                await other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await _handler(tx, message)

    consumer = _consumer(pg_db, topic, f"g{uuid.uuid4().hex[:8]}", handler)
    async with _running(consumer):
        await eventually(lambda: _applied(consumer, total), timeout=90, what="every event")
    assert terminated == 2
    assert consumer.dead_lettered == 0
    assert await _effects(pg_db) == (total, total)
    assert await read_topic(dlq_topic(topic, consumer.name)) == []
    assert await _held(pg_db) == 0


async def _applied(consumer: EventConsumer, count: int) -> bool:
    return consumer.applied >= count


async def test_a_client_that_stops_delivering_is_replaced_and_nothing_is_lost(
    kafka: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka can stop fetching without a word after a request times out (aio-libs/
    aiokafka#1037): the loop polls and gets nothing while messages wait. Here the first client
    hands out nothing after its first batch (it still polls Kafka, so the partition's end is
    known); once the stall time has passed with messages behind, the consumer starts a new
    client, which applies the rest, each once."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event(f"S-{i}", 1, {"amount": i}) for i in range(1, 11)])
    await _prepare(db)
    clients: list[Any] = []

    def first_one_stops_delivering(*args: Any, **kwargs: Any) -> Any:
        client = new_consumer(*args, **kwargs)
        clients.append(client)
        if len(clients) == 1:
            real_getmany, delivered = client.getmany, asyncio.Event()

            async def getmany(*a: Any, **kw: Any) -> Any:
                batches = await real_getmany(*a, **kw)
                if delivered.is_set():
                    return {}  # polled, and lost
                if batches:
                    delivered.set()
                return batches

            client.getmany = getmany
        return client

    monkeypatch.setattr(consumer_loop, "new_consumer", first_one_stops_delivering)
    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], _handler, EventStore(db), bootstrap_servers=KAFKA,
        retry_backoff_seconds=0.01, stall_seconds=2,
    )  # fmt: skip
    async with _running(consumer):
        await eventually(lambda: _applied(consumer, 1), what="the first batch")
        await produce(topic, [stored_event(f"T-{i}", 1, {"amount": i}) for i in range(11, 21)])
        await eventually(lambda: _applied(consumer, 20), timeout=60, what="the rest")
    assert len(clients) == 2, "the first client was not replaced"
    assert await _effects(db) == (20, 20)


async def test_a_partition_whose_start_retention_moved_is_not_behind(
    kafka: str, db: Database
) -> None:
    """The lag counts from where a partition starts, not from 0: a fresh group on a partition
    whose first records were deleted (retention, `kafka-delete-records.sh`) is at lag 0 once it
    has read the rest, and its client is not taken for starved."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event(f"S-{i}", 1, {"amount": i}) for i in range(1, 6)])
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(5)})
    finally:
        await admin.close()
    await _prepare(db)
    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], _handler, EventStore(db), bootstrap_servers=KAFKA,
        stall_seconds=1,
    )  # fmt: skip
    async with _running(consumer):
        await consumer.assigned.wait()
        await eventually(
            lambda: _lag_is(consumer, {TopicPartition(topic, 0): 0}), what="lag 0 from offset 5"
        )
        await asyncio.sleep(2)  # beyond the stall time: a starved client would be replaced
        assert consumer.status.attempts == 0 and consumer.status.state == "running"
        assert consumer.applied == 0


async def _lag_is(consumer: EventConsumer, lag: dict[TopicPartition, int]) -> bool:
    return consumer.lag == lag
