"""The relay against the real broker: order, completeness, crash recovery, one publisher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial

import asyncpg
import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY

from shared.db import Database
from shared.domain import Metadata, NewEvent
from shared.eventstore import EventStore
from shared.eventstore.postgres import PostgresEventLog
from shared.messaging.relay import RECORD_BATCHES_FROM, Relay
from tests.infra import alter_topic, create_topic, eventually, header, read_topic
from tests.sample_domain import Credited, registry

META = Metadata(actor="tester")
# Reads of a few events go record by record through the producer's `send`, larger ones in record
# batches the relay fills: the tests of what Kafka refuses take both ways.
BOTH_WAYS = pytest.mark.parametrize(
    "record_batches_from", [RECORD_BATCHES_FROM, 1], ids=["by-record", "record-batches"]
)


def _credit(amount: int) -> list[NewEvent]:
    return [registry.encode(Credited(amount=amount), META)]


def _note(characters: int) -> list[NewEvent]:
    """One event with a field of that many characters (stored where no size limit is set, as
    before the limit existed, or under a larger one)."""
    return [NewEvent("ledger.noted", 1, {"note": "n" * characters}, META)]


@contextlib.asynccontextmanager
async def running(relay: Relay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _write_concurrently(store: EventStore, writers: int, appends: int) -> int:
    """`writers` tasks each appending `appends` events to random streams; returns the count."""
    versions: dict[str, int] = defaultdict(int)
    locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
    rng = random.Random(7)

    async def writer(w: int) -> None:
        for i in range(appends):
            stream = f"S-{rng.randrange(25)}"
            async with locks[stream]:
                await store.append(stream, versions[stream], _credit(w * 10_000 + i))
                versions[stream] += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return writers * appends


def _check_published(records: list[ConsumerRecord[bytes, bytes]], stored_ids: set[str]) -> None:
    ids = [header(r, "ce_id") for r in records]
    assert set(ids) == stored_ids, "every stored event is on the topic, nothing else"
    per_partition: dict[int, list[int]] = defaultdict(list)
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        per_partition[r.partition].append(int(header(r, "ce_position")))
        per_key[r.key].append(int(header(r, "ce_streamversion")))
    for positions in per_partition.values():
        first_seen = list(dict.fromkeys(positions))
        assert first_seen == sorted(first_seen), "positions go up within each partition"
    for versions in per_key.values():
        first_seen = list(dict.fromkeys(versions))
        assert first_seen == list(range(1, len(first_seen) + 1)), "no stream version skipped"


@BOTH_WAYS
async def test_many_writers_every_event_published_once_in_order(
    kafka: str, db: Database, record_batches_from: int
) -> None:
    store = EventStore(db)
    topic = await create_topic()
    # A small batch makes the relay read many times while writers are still committing.
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  batch_size=7, record_batches_from=record_batches_from)  # fmt: skip
    async with running(relay):
        written = await _write_concurrently(store, writers=16, appends=40)

        async def caught_up() -> bool:
            return relay.position > 0 and relay.position == await _head(store)

        await eventually(caught_up, what="the relay to publish every event")
    records = await read_topic(topic)
    stored = await _all_ids(store)
    assert len(stored) == written
    assert len(records) == written, "no failure happened, so no duplicates either"
    _check_published(records, stored)


async def test_record_batches_that_fill_keep_each_partitions_order(
    kafka: str, db: Database
) -> None:
    """The relay fills each partition's record batches itself: at 1 KiB a batch is full after a
    few events, and each read makes several per partition. Every event is published once, in
    order, on the partition the producer's own partitioner gives its key."""
    store = EventStore(db)
    topic = await create_topic(partitions=3)
    for i in range(60):
        await store.append(f"S-{i % 12}", i // 12, _credit(i))
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  producer_options={"max_batch_size": 1024}, record_batches_from=1)  # fmt: skip
    async with running(relay):
        await eventually(lambda: _published(relay, 60), what="every event on Kafka")
    records = await read_topic(topic)
    assert len(records) == 60
    _check_published(records, await _all_ids(store))
    partitioner = DefaultPartitioner()
    assert all(r.partition == partitioner(r.key, [0, 1, 2], [0, 1, 2]) for r in records)
    assert len({r.partition for r in records}) == 3, "the twelve streams span the partitions"


async def test_idle_relay_is_woken_by_commit_not_by_polling(kafka: str, db: Database) -> None:
    """With a 60 s safety poll, only the commit notification can deliver within the timeout."""
    topic = await create_topic(partitions=1)
    relay = Relay(
        EventStore(db),
        topic=topic,
        source="/aidline/test",
        bootstrap_servers=kafka,
        idle_poll_seconds=60,
    )
    async with running(relay):
        await eventually(lambda: _leader(relay), what="the relay to start")
        # Another engine, as another process would: on PostgreSQL only NOTIFY can wake the relay.
        writer = (
            EventStore(Database(db.url, db.schema))
            if db.dialect.shared_by_processes
            else relay.store
        )
        await writer.append("S-1", 0, _credit(1))
        await eventually(lambda: _published(relay, 1), timeout=10, what="the event on Kafka")
        if writer is not relay.store:
            await writer.db.dispose()


async def test_the_relay_reads_the_outbox_only_when_told_of_news(kafka: str, db: Database) -> None:
    """One read to start, then one per announced append: not one more after each
    acknowledgement, nor for the NOTIFY of its own process's appends (issue 20)."""
    topic = await create_topic(partitions=1)
    store = EventStore(db)
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  idle_poll_seconds=60)  # fmt: skip
    async with running(relay):
        await eventually(lambda: _leader(relay), what="the relay to start")
        await asyncio.sleep(0.2)  # the first read, of an empty outbox
        before = _reads(topic)
        appends = 20
        for i in range(appends):
            await store.append(f"S-{i}", 0, _credit(i))
            await eventually(partial(_published, relay, i + 1), timeout=10, what="the event")
        await asyncio.sleep(0.3)  # a stray notification would show as a read by now
        reads = _reads(topic) - before
    assert appends <= reads <= appends + 2, f"{reads} reads for {appends} appends"


async def test_an_append_nobody_announced_is_published_by_the_safety_net_poll(
    kafka: str, db: Database
) -> None:
    """An append the store did not announce (its own log's NOTIFY is passed over) still
    leaves within the idle poll."""
    topic = await create_topic(partitions=1)
    store = EventStore(db)
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  idle_poll_seconds=0.5)  # fmt: skip
    async with running(relay):
        await eventually(lambda: _leader(relay), what="the relay to start")
        row = {
            "stream_id": "S-1", "stream_version": 1, "event_id": uuid.uuid4(),
            "event_type": "ledger.credited", "schema_version": 1, "data": {"amount": 1},
            "meta": {"actor": "tester", "correlation_id": None, "causation_id": None},
            "recorded_at": datetime.now(UTC),
        }  # fmt: skip
        async with store.log.append_connection() as (conn, direct):
            await store.log.insert(conn, [row], [], direct=direct)
        await eventually(lambda: _published(relay, 1), timeout=10, what="the event on Kafka")


async def test_relay_killed_mid_batch_loses_nothing(kafka: str, pg_db: Database) -> None:
    store = EventStore(pg_db)
    total = 3000
    for start in range(0, total, 500):
        async with store.transaction() as tx:
            for i in range(start, start + 500):
                tx.append(f"S-{i}", 0, _credit(i))
    topic = await create_topic()
    args = [sys.executable, "-m", "tests.integration.worker", "relay", pg_db.url, pg_db.schema]
    # Batches of 10, each checkpointed: 300 of them, so that the relay is still at work when
    # the test sees the first 500 published (with 60 batches of 50 a busy machine once let it
    # finish all 3,000 in between).
    first = subprocess.Popen([*args, topic, "10"], env=os.environ.copy())
    try:
        await eventually(lambda: _checkpoint_beyond(store, 500), what="the first batches")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    published_before_restart = await _checkpoint(store)
    assert published_before_restart < total, "killed before it finished"
    second = subprocess.Popen([*args, topic, "50"], env=os.environ.copy())
    try:
        await eventually(lambda: _checkpoint_beyond(store, total - 1), what="the restarted relay")
    finally:
        second.terminate()
        second.wait()
    records = await read_topic(topic)
    _check_published(records, await _all_ids(store))
    assert len({header(r, "ce_id") for r in records}) == total


async def test_a_checkpoint_behind_the_acks_means_copies_never_gaps(
    kafka: str, db: Database
) -> None:
    store = EventStore(db)
    topic = await create_topic()
    # Checkpoints at most once a minute while publishing: the first relay stops with its
    # checkpoint far behind what Kafka acknowledged.
    first = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  batch_size=10, checkpoint_seconds=60)  # fmt: skip
    async with running(first):
        for i in range(100):
            await store.append(f"S-{i % 9}", i // 9, _credit(i))
        await eventually(lambda: _published(first, 100), what="every event")
    behind = await _checkpoint(store)
    assert behind < 100, "the checkpoint lagged the acknowledgements"
    second = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                   checkpoint_seconds=0.05)  # fmt: skip
    async with running(second):
        await eventually(lambda: _checkpoint_beyond(store, 99), what="the second relay, idle")
    records = await read_topic(topic)
    assert len(records) == 100 + (100 - behind), "what followed the checkpoint went out again"
    _check_published(records, await _all_ids(store))


async def test_only_one_relay_publishes_and_another_takes_over(kafka: str, pg_db: Database) -> None:
    stores = [EventStore(pg_db), EventStore(Database(pg_db.url, pg_db.schema))]
    topic = await create_topic()
    relays = [
        Relay(
            store,
            topic=topic,
            source="/aidline/test",
            bootstrap_servers=kafka,
            election_retry_seconds=0.1,
        )
        for store in stores
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: _any_leader(*relays), what="a leader")
        assert [relay.is_leader for relay in relays].count(True) == 1
        lead = 0 if relays[0].is_leader else 1
        leader, follower = relays[lead], relays[1 - lead]
        await stores[0].append("S-1", 0, _credit(1))
        await eventually(lambda: _published(leader, 1), what="the leader to publish")
        assert not follower.is_leader and follower.position == 0
        tasks[lead].cancel()  # the leader's connection closes, releasing its lock
        await eventually(lambda: _leader(follower), what="the follower to take over")
        await stores[0].append("S-2", 0, _credit(2))
        await eventually(lambda: _published(follower, 2), what="the new leader to publish")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stores[1].db.dispose()
    records = await read_topic(topic)
    assert sorted(header(r, "ce_subject") for r in records) == ["S-1", "S-2"]


async def test_a_leaders_session_is_not_handed_on_to_commands(pg_db: Database) -> None:
    """The leader commits its checkpoints with `synchronous_commit` off and holds a lock: when
    its leadership ends, its connection is closed, not returned to the pool, where a command
    would have committed on it without waiting for the disk."""
    db = Database(pg_db.url, pg_db.schema, pool_size=1)  # the next connection is that one
    try:
        async with EventStore(db).log.leadership("t", 0.1, lambda: None) as leader:
            assert leader is not None
            assert await leader.scalar(sa.text("SHOW synchronous_commit")) == "off"
        async with db.engine.connect() as conn:
            assert await conn.scalar(sa.text("SHOW synchronous_commit")) == "on"
            held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            assert await conn.scalar(sa.text(f"{held} AND pid = pg_backend_pid()")) == 0
    finally:
        await db.dispose()


async def test_a_leaders_own_appends_send_no_notification(pg_db: Database) -> None:
    """While a log's relay leads, its appends wake the relay in-process and send no NOTIFY
    (which it would only pass over); another process's appends still notify, and so do its own
    once the leadership has ended."""
    leading, other = EventStore(pg_db), EventStore(Database(pg_db.url, pg_db.schema))
    assert isinstance(leading.log, PostgresEventLog) and isinstance(other.log, PostgresEventLog)
    listener = await asyncpg.connect(dsn=pg_db.url.replace("+asyncpg", ""))
    origins: list[str] = []
    await listener.add_listener(leading.log.channel, lambda *args: origins.append(args[-1]))
    try:
        async with leading.log.leadership("t", 0.1, lambda: None):
            await leading.append("S-1", 0, _credit(1))
            await other.append("S-2", 0, _credit(2))
            # Delivered in commit order: the leader's would have come first.
            await eventually(lambda: _at_least(origins, 1), what="the other's notification")
            assert origins == [other.log.origin]
        await leading.append("S-3", 0, _credit(3))
        await eventually(lambda: _at_least(origins, 2), what="the former leader's notification")
        assert origins == [other.log.origin, leading.log.origin]
    finally:
        await listener.close()
        await other.db.dispose()


@BOTH_WAYS
async def test_an_event_the_broker_refuses_stops_the_relay_there_until_fixed_and_restarted(
    kafka: str, db: Database, record_batches_from: int
) -> None:
    topic = await create_topic(partitions=1, configs={"max.message.bytes": "10000"})
    store = EventStore(db)
    await store.append("S-1", 0, _credit(1))
    await store.append("S-2", 0, _note(20_000))  # larger than the topic takes
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  idle_poll_seconds=0.1, record_batches_from=record_batches_from)  # fmt: skip
    async with running(relay):
        await eventually(lambda: _stopped(relay), what="the relay to stop at the refused event")
        health = await relay.observe()
        assert (health["ok"], health["state"], health["position"], health["lag"]) == (
            False, "stopped", 1, 1)  # fmt: skip
        assert health["stopped_at"]["position"] == 2
        assert health["stopped_at"]["event_type"] == "ledger.noted"
        assert health["stopped_at"]["error"] == "MessageSizeTooLargeError"
        assert REGISTRY.get_sample_value("aidline_relay_stopped", {"topic": topic}) == 1
        await store.append("S-1", 1, _credit(3))  # what follows waits behind it: never skipped
        assert (await relay.observe())["lag"] == 2 and relay.position == 1
        assert relay.status.state == "stopped"
    assert [header(r, "ce_position") for r in await read_topic(topic)] == ["1"]

    await alter_topic(topic, {"max.message.bytes": "1048588"})  # the operator's fix
    restarted = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                      record_batches_from=record_batches_from)  # fmt: skip
    async with running(restarted):  # a restart tries it again
        await eventually(lambda: _published(restarted, 3), what="everything, once fixed")
        health = await restarted.observe()
        assert (health["ok"], health["lag"], health["stopped_at"]) == (True, 0, None)
    records = await read_topic(topic)
    assert [header(r, "ce_position") for r in records] == ["1", "2", "3"], "in order, once"
    _check_published(records, await _all_ids(store))


@BOTH_WAYS
async def test_an_event_larger_than_the_producer_sends_stops_the_relay_before_it(
    kafka: str, db: Database, record_batches_from: int
) -> None:
    topic = await create_topic(partitions=1)
    store = EventStore(db)
    await store.append("S-1", 0, _note(20_000))
    await store.append("S-2", 0, _credit(2))
    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka,
                  producer_options={"max_request_size": 10_000},
                  record_batches_from=record_batches_from)  # fmt: skip
    async with running(relay):
        await eventually(lambda: _stopped(relay), what="the relay to stop at the first event")
        assert relay.refused is not None and relay.refused.event.position == 1
        assert relay.position == 0 and (await relay.observe())["lag"] == 2
    assert await read_topic(topic) == [], "nothing after it was sent"


# -- helpers ---------------------------------------------------------------------------------


async def _head(store: EventStore) -> int:
    async with store.db.engine.connect() as conn:
        return await store.head_position(conn)


async def _all_ids(store: EventStore) -> set[str]:
    async with store.db.engine.connect() as conn:
        return {str(e.event_id) for e in await store.read_after(conn, 0, 1_000_000)}


async def _checkpoint(store: EventStore) -> int:
    from sqlalchemy import select

    from shared.eventstore.tables import relay_checkpoints

    async with store.db.engine.connect() as conn:
        return int(await conn.scalar(select(relay_checkpoints.c.position)) or 0)


async def _checkpoint_beyond(store: EventStore, position: int) -> bool:
    return await _checkpoint(store) > position


async def _stopped(relay: Relay) -> bool:
    return relay.status.state == "stopped"


async def _published(relay: Relay, count: int) -> bool:
    return relay.position >= count


async def _any_leader(a: Relay, b: Relay) -> bool:
    return a.is_leader or b.is_leader


def _reads(topic: str) -> float:
    return REGISTRY.get_sample_value("aidline_relay_reads_total", {"topic": topic}) or 0.0


async def _at_least(items: list[str], count: int) -> bool:
    return len(items) >= count


async def _leader(relay: Relay) -> bool:
    return relay.is_leader
