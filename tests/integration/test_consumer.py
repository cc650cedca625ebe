"""The consumer machinery against the real broker: exactly-once effect, DLQ, crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence

import sqlalchemy as sa
from prometheus_client import REGISTRY

from shared.db import Database
from shared.eventstore import EventStore, Transaction
from shared.eventstore.tables import consumer_offsets, processed_events
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.topics import dlq_topic
from tests.infra import create_topic, eventually, header, produce, read_topic, stored_event
from tests.integration.worker import effects


class Poison(Exception):
    pass


async def _handler(tx: Transaction, message: Message) -> None:
    if message.event.data["amount"] == 666:
        raise Poison("666 is not an amount this handler accepts")
    await tx.conn.execute(
        effects.insert().values(
            event_id=str(message.event.event_id), amount=message.event.data["amount"]
        )
    )


@contextlib.asynccontextmanager
async def consuming(
    db: Database, topic: str, group: str, event_types: set[str] | None = None
) -> AsyncIterator[EventConsumer]:
    async with db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)
    consumer = EventConsumer(
        group,
        [topic],
        _handler,
        EventStore(db),
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        retry_backoff_seconds=0.01,
        event_types=event_types,
    )
    async with _running(consumer):
        yield consumer


@contextlib.asynccontextmanager
async def _running(consumer: EventConsumer) -> AsyncIterator[EventConsumer]:
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _duplicates(group: str, topic: str) -> float:
    """`aidline_consumer_duplicates_total` of the consumer (its name is the group's)."""
    labels = {"consumer": group, "topic": topic}
    return REGISTRY.get_sample_value("aidline_consumer_duplicates_total", labels) or 0.0


async def _effects(db: Database) -> tuple[int, int]:
    """(rows, distinct events) in the effect table: equal unless something applied twice."""
    async with db.engine.connect() as conn:
        rows = await conn.scalar(sa.select(sa.func.count()).select_from(effects))
        distinct = await conn.scalar(sa.select(sa.func.count(sa.distinct(effects.c.event_id))))
    return int(rows or 0), int(distinct or 0)


async def test_poison_messages_go_to_the_dlq_and_the_next_is_processed(
    kafka: str, db: Database
) -> None:
    topic = await create_topic(partitions=1)
    await produce(
        topic,
        [
            stored_event("S-1", 1, {"amount": 1}),
            stored_event("S-1", 2, {"amount": 666}),  # the handler fails on it every time
            b"this is not a CloudEvent",
            stored_event("S-1", 3, {"amount": 3}),
        ],
    )
    group = f"g{uuid.uuid4().hex[:8]}"
    async with consuming(db, topic, group) as consumer:
        await eventually(lambda: _applied(consumer, 2), what="both good messages")
        assert consumer.dead_lettered == 2
    async with db.engine.connect() as conn:
        amounts = sorted((await conn.execute(sa.select(effects.c.amount))).scalars())
    assert amounts == [1, 3]
    dead = await read_topic(dlq_topic(topic, group))
    assert len(dead) == 2
    assert header(dead[0], "dlq_error_type") == "Poison"
    assert "666" in header(dead[0], "dlq_error")
    assert header(dead[0], "dlq_attempts") == "3"
    assert header(dead[1], "dlq_error_type") == "EnvelopeError"
    assert {header(d, "dlq_original_offset") for d in dead} == {"1", "2"}


async def test_duplicates_and_redelivery_have_no_second_effect(kafka: str, db: Database) -> None:
    topic = await create_topic()
    events = [stored_event(f"S-{i % 7}", i, {"amount": i}) for i in range(1, 101)]
    # The relay may publish an event twice after a crash: same ce_id, another offset.
    await produce(topic, events + events[:20])
    group = f"g{uuid.uuid4().hex[:8]}"
    async with consuming(db, topic, group) as consumer:
        await eventually(lambda: _applied(consumer, 100), what="all events")
        await eventually(lambda: _lag_zero(consumer), what="the duplicates to be read")
    assert await _effects(db) == (100, 100)
    assert _duplicates(group, topic) == 20
    # Reset the consumer's stored offsets to the start: everything is delivered again.
    async with db.engine.begin() as conn:
        await conn.execute(consumer_offsets.delete())
    async with consuming(db, topic, group) as consumer:
        await asyncio.wait_for(consumer.assigned.wait(), 30)
        await eventually(lambda: _lag_zero(consumer), what="the redelivery to be read")
        assert consumer.applied == 0
    assert await _effects(db) == (100, 100)
    assert _duplicates(group, topic) == 20 + 120


async def test_events_the_handler_does_not_act_on_are_passed_over_without_a_record(
    kafka: str, db: Database
) -> None:
    topic = await create_topic(partitions=1)
    credits = [stored_event("S-1", i, {"amount": i}) for i in range(1, 6)]
    others = [
        stored_event("S-2", i, {"amount": 666}, event_type="ledger.audited") for i in range(1, 6)
    ]  # (666: the handler would fail on them, were they handed to it)
    # Passed over first (their offsets may wait for the next transaction), acted on last.
    await produce(topic, others + credits)
    async with consuming(db, topic, f"g{uuid.uuid4().hex[:8]}", {"ledger.credited"}) as consumer:
        await eventually(lambda: _lag_zero(consumer), what="every message to be read")
        assert consumer.applied == 5 and consumer.dead_lettered == 0
    assert await _effects(db) == (5, 5)
    async with db.engine.connect() as conn:
        tracked = await conn.scalar(sa.select(sa.func.count()).select_from(processed_events))
        offset = await conn.scalar(sa.select(consumer_offsets.c.next_offset))
    assert (tracked, offset) == (5, 10)


async def test_consumer_killed_between_effect_and_commit_applies_once(
    kafka: str, pg_db: Database
) -> None:
    topic = await create_topic()
    total = 400
    await produce(topic, [stored_event(f"S-{i % 11}", i, {"amount": i}) for i in range(total)])
    async with pg_db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)
    args = [sys.executable, "-m", "tests.integration.worker", "consumer", pg_db.url, pg_db.schema]
    group = f"g{uuid.uuid4().hex[:8]}"
    # 5 ms inside each effect's transaction: the kill lands between effect and commit.
    first = subprocess.Popen([*args, topic, group, "5"], env=os.environ.copy())
    try:
        await eventually(lambda: _distinct_at_least(pg_db, 60), what="the first effects")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (await _effects(pg_db))[1] < total, "killed before it finished"
    second = subprocess.Popen([*args, topic, group, "0"], env=os.environ.copy())
    try:
        await eventually(lambda: _distinct_at_least(pg_db, total), what="the restarted consumer")
    finally:
        second.terminate()
        second.wait()
    assert await _effects(pg_db) == (total, total)


async def _applied(consumer: EventConsumer, count: int) -> bool:
    return consumer.applied >= count


async def _lag_zero(consumer: EventConsumer) -> bool:
    lag = consumer.lag
    return bool(lag) and not any(lag.values())


async def _distinct_at_least(db: Database, count: int) -> bool:
    return (await _effects(db))[1] >= count


async def test_a_batch_handler_gets_whole_batches_and_listeners_hear_commits(
    kafka: str, db: Database
) -> None:
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event("S-1", i, {"amount": i}) for i in range(1, 51)])
    await produce(topic, [stored_event("S-1", 51, {"amount": 666})])
    async with db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)
    sizes: list[int] = []
    committed: list[int] = []

    async def batch(tx: Transaction, messages: Sequence[Message]) -> None:
        sizes.append(len(messages))
        for message in messages:
            await _handler(tx, message)

    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], None, EventStore(db), bootstrap_servers=kafka,
        retry_backoff_seconds=0.01, batch_handler=batch,
        on_commit=lambda messages: committed.extend(m.event.data["amount"] for m in messages),
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _applied(consumer, 50), what="the good messages")
        await eventually(lambda: _lag_zero(consumer), what="the poison message")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert max(sizes) > 1, "the fast path hands over more than one message at a time"
    assert sorted(committed) == list(range(1, 51)), "listeners hear applied messages only"
    assert consumer.dead_lettered == 1
    assert await _effects(db) == (50, 50)


own_record = sa.Table(
    "own_record",
    sa.MetaData(),
    sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("amount", sa.Integer, nullable=False),
)


async def test_a_handler_that_records_each_event_is_the_tracking_record(
    kafka: str, db: Database
) -> None:
    topic = await create_topic(partitions=2)
    events = [stored_event(f"S-{i % 5}", i, {"amount": i}) for i in range(1, 31)]
    poison = stored_event("S-9", 1, {"amount": 666})
    await produce(topic, [*events, poison, *events[:10]])  # the relay published 10 twice
    async with db.engine.begin() as conn:
        await conn.run_sync(own_record.metadata.create_all)

    async def batch(tx: Transaction, messages: Sequence[Message]) -> None:
        for message in messages:
            if message.event.data["amount"] == 666:
                raise Poison("666 is not an amount this handler accepts")
        await tx.conn.execute(
            own_record.insert(),
            [{"event_id": m.event.event_id, "amount": m.event.data["amount"]} for m in messages],
        )

    group = f"g{uuid.uuid4().hex[:8]}"

    def running() -> contextlib.AbstractAsyncContextManager[EventConsumer]:
        return _running(EventConsumer(
            group, [topic], None, EventStore(db), bootstrap_servers=kafka,
            retry_backoff_seconds=0.01, batch_handler=batch,
            recorded_by_handler=own_record.c.event_id,
        ))  # fmt: skip

    async with running() as consumer:
        await eventually(lambda: _lag_zero(consumer), what="every message")
        assert (consumer.applied, consumer.dead_lettered) == (30, 1)
        # Counted once each, though the poison's batch was rolled back and applied again.
        assert _duplicates(group, topic) == 10
        assert await consumer.processed(events[0].event_id)
        assert await consumer.processed(poison.event_id), "dead-lettered counts as processed"
        assert not await consumer.processed(uuid.uuid4())
    async with db.engine.connect() as conn:
        amounts = (await conn.execute(sa.select(own_record.c.amount))).scalars().all()
        tracked = (await conn.execute(sa.select(processed_events.c.event_id))).scalars().all()
    assert sorted(amounts) == list(range(1, 31)), "each event once, duplicates skipped"
    assert tracked == [poison.event_id], "the consumer's own rows: only what the handler did not do"
    # Everything delivered again: nothing applied, nothing dead-lettered twice.
    async with db.engine.begin() as conn:
        await conn.execute(consumer_offsets.delete())
    async with running() as consumer:
        await asyncio.wait_for(consumer.assigned.wait(), 30)
        await eventually(lambda: _lag_zero(consumer), what="the redelivery to be read")
        assert (consumer.applied, consumer.dead_lettered) == (0, 0)
        assert _duplicates(group, topic) == 10 + 41


# -- consumers sharing tables (a rebuild's helper processes): another writer's rows ----------

things = sa.Table(
    "things",
    sa.MetaData(),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("amount", sa.Integer, nullable=False),
)


async def _waiting_on_a_lock(db: Database, count: int = 1) -> bool:
    async with db.engine.connect() as conn:
        waiting = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%things%'"
                " AND datname = current_database()"
            )
        )
    return int(waiting or 0) >= count


async def test_a_batch_that_meets_another_writers_new_row_is_retried_whole(
    kafka: str, pg_db: Database
) -> None:
    """Like the projection's writer: load the rows a batch touches, insert the missing ones.
    Another writer inserts one of them meanwhile: the batch fails on the unique key once the
    other commits, and is applied again whole (seeing the row), not split message by message."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event(f"K-{i}", 1, {"amount": i}) for i in range(1, 21)])
    async with pg_db.engine.begin() as conn:
        await conn.run_sync(things.metadata.create_all)
    sizes: list[int] = []

    async def batch(tx: Transaction, messages: Sequence[Message]) -> None:
        sizes.append(len(messages))
        keys = [m.event.subject for m in messages]
        found = await tx.conn.execute(sa.select(things.c.key).where(things.c.key.in_(keys)))
        have = set(found.scalars())
        for message in messages:
            values = {"key": message.event.subject, "amount": message.event.data["amount"]}
            if values["key"] in have:
                await tx.conn.execute(
                    things.update().where(things.c.key == values["key"]).values(values)
                )
            else:
                await tx.conn.execute(things.insert().values(values))

    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], None, EventStore(pg_db), bootstrap_servers=kafka,
        retry_backoff_seconds=0.01, batch_handler=batch,
    )  # fmt: skip
    async with pg_db.engine.connect() as other:
        await other.begin()
        await other.execute(things.insert().values(key="K-5", amount=0))  # not committed yet
        async with _running(consumer):
            await eventually(lambda: _waiting_on_a_lock(pg_db), what="the batch to wait for K-5")
            await other.commit()
            await eventually(lambda: _applied(consumer, 20), what="the batch")
    assert consumer.dead_lettered == 0
    assert sizes == [20, 20], "failed once on K-5, then applied whole"
    async with pg_db.engine.connect() as conn:
        rows = await conn.execute(sa.select(things.c.key, things.c.amount))
        amounts = {key: amount for key, amount in rows}
    assert amounts == {f"K-{i}": i for i in range(1, 21)}


async def test_a_deadlock_is_not_the_messages_fault(kafka: str, pg_db: Database) -> None:
    """A batch chosen as a deadlock's victim is retried whole: nothing dead-lettered, even in
    the message-by-message pass (which cannot lock rows in one order)."""
    topic = await create_topic(partitions=1)
    await produce(topic, [stored_event("S-1", 1, {"amount": 1})])
    async with pg_db.engine.begin() as conn:
        await conn.run_sync(things.metadata.create_all)
        await conn.execute(things.insert(), [{"key": "A", "amount": 0}, {"key": "B", "amount": 0}])
    calls = 0

    async def handler(tx: Transaction, message: Message) -> None:
        nonlocal calls
        calls += 1
        for key in ("A", "B"):  # locks A, then waits for B (held by the test below)
            await tx.conn.execute(
                things.update().where(things.c.key == key).values(amount=things.c.amount + 1)
            )

    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], handler, EventStore(pg_db), bootstrap_servers=kafka,
        retry_backoff_seconds=0.01,
    )  # fmt: skip
    async with pg_db.engine.connect() as other:
        await other.begin()
        await other.execute(things.update().where(things.c.key == "B").values(amount=10))
        async with _running(consumer):
            await eventually(lambda: _waiting_on_a_lock(pg_db), what="the handler to wait for B")
            # Now wait for A in turn: a deadlock. The handler waited first, so PostgreSQL's check
            # finds it first and makes its transaction the victim.
            await other.execute(things.update().where(things.c.key == "A").values(amount=10))
            await other.commit()
            await eventually(lambda: _applied(consumer, 1), what="the message")
    assert (consumer.dead_lettered, calls) == (0, 2)
    async with pg_db.engine.connect() as conn:
        rows = await conn.execute(sa.select(things.c.key, things.c.amount))
        amounts = {key: amount for key, amount in rows}
    assert amounts == {"A": 11, "B": 11}
