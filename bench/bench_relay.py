"""Relay: events/s from the store to Kafka beside a raw aiokafka producer sending the same
messages; and the idle relay's latency from commit to the event being readable on Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer

from bench.report import Result
from shared.db import Database
from shared.domain import Metadata
from shared.eventstore import EventStore
from shared.messaging import envelope
from shared.messaging.kafka import new_producer
from shared.messaging.relay import Relay
from tests.infra import KAFKA, POSTGRES_URL, create_topic
from tests.sample_domain import Credited, registry

EVENTS = int(os.environ.get("BENCH_RELAY_EVENTS", "50000"))
LATENCY_SAMPLES = 200


async def _fill(store: EventStore, count: int) -> None:
    meta = Metadata(actor="bench")
    for start in range(0, count, 1000):
        async with store.transaction() as tx:
            for i in range(start, min(count, start + 1000)):
                tx.append(f"S-{i}", 0, [registry.encode(Credited(amount=i), meta)])


async def _raw_rate(store: EventStore, topic: str) -> float:
    async with store.db.engine.connect() as conn:
        events = await store.read_after(conn, 0, EVENTS)
    messages = [envelope.encode(e, "/aidline/bench") for e in events]
    producer = new_producer(KAFKA)
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in messages]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return len(messages) / elapsed


async def _relay_rate(store: EventStore, topic: str) -> float:
    relay = Relay(store, topic=topic, source="/aidline/bench", bootstrap_servers=KAFKA)
    task = asyncio.create_task(relay.run())
    started = time.perf_counter()
    while relay.position < EVENTS:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return EVENTS / elapsed


async def _idle_latency(store: EventStore, topic: str) -> list[float]:
    relay = Relay(store, topic=topic, source="/aidline/bench", bootstrap_servers=KAFKA)
    task = asyncio.create_task(relay.run())
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="latest")
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    samples = []
    meta = Metadata(actor="bench")
    for i in range(LATENCY_SAMPLES):
        stream = f"L-{uuid.uuid4().hex}"
        started = time.perf_counter()
        await store.append(stream, 0, [registry.encode(Credited(amount=i), meta)])
        while True:
            record = await consumer.getone()
            if record.key == stream.encode():
                break
        samples.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)  # let the relay go idle again
    await consumer.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return samples


async def run() -> list[Result]:
    db = Database(POSTGRES_URL, f"bench_relay_{uuid.uuid4().hex[:6]}")
    from shared.db.migrate import upgrade
    from tests.conftest import MIGRATIONS

    await upgrade(db, MIGRATIONS)
    store = EventStore(db)
    try:
        await _fill(store, EVENTS)
        raw = await _raw_rate(store, await create_topic(prefix="bench"))
        relayed = await _relay_rate(store, await create_topic(prefix="bench"))
        latency = await _idle_latency(store, await create_topic(prefix="bench"))
    finally:
        await db.drop_schema()
        await db.dispose()
    p50 = statistics.median(latency)
    p99 = statistics.quantiles(latency, n=100)[98]
    return [
        Result(
            "relay: store → Kafka",
            relayed,
            "events/s",
            "raw aiokafka producer",
            raw,
            target=">= 0.5x raw",
            met=relayed >= 0.5 * raw,
            notes=f"{EVENTS:,} events, PostgreSQL",
        ),
        Result(
            "relay: idle commit → readable on Kafka, p50",
            p50,
            "ms",
            target="well under 100 ms",
            met=p50 < 100,
        ),
        Result(
            "relay: idle commit → readable on Kafka, p99",
            p99,
            "ms",
            target="well under 100 ms",
            met=p99 < 100,
            notes=f"{LATENCY_SAMPLES} samples",
        ),
    ]
