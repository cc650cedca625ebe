"""Memory against history: each service's resident memory once it has caught up on a history of
0, 100,000 and 1,000,000 events, every service a real process with a fresh database (what a new
instance, or one restored from nothing, reads first).

The history is the projection benchmark's mix (a requirement's way from submission through
pledge, allocation and shipment to handover), with each requirement fulfilled at the end and
the items spread over the whole catalogue, as the forum's record is: so the allocation service
plans each item family's few open needs, not one family of every need ever stated. It goes into
the stack's own topics, after whatever other runs left there (the notes give the actual count).

Baseline: the same service caught up on the smallest history, in the same run. A figure that
grows with the history read is a defect (issue 20): the target is <= 150 MB at 1,000,000.

BENCH_MEMORY_HISTORY (default "0,100000,1000000"): the history sizes, ascending.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.bench_projection import _scenario
from bench.procs import rss_mb
from bench.report import Result
from bench.settle import wait_caught_up
from shared.catalogue import base_items
from shared.contracts import REGISTRIES
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.domain import Metadata, StoredEvent
from shared.messaging import envelope
from shared.messaging.kafka import new_producer
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.infra import KAFKA

HISTORY = [int(n) for n in os.environ.get("BENCH_MEMORY_HISTORY", "0,100000,1000000").split(",")]
TARGET_MB = 150.0
ITEMS = sorted(dict(base_items()))
_IDS = ("requirement_id", "pledge_id", "allocation_id", "shipment_id")


def _history(run: str, n: int, start: datetime) -> dict[str, list[tuple[str, str, Any]]]:
    """Requirement n's events, its ids made unique to this run and its item one of the
    catalogue's, then fulfilled."""
    item = ITEMS[n % len(ITEMS)]
    mix = _scenario(n, start)
    mix[REQUESTS].append((f"R-{n}", "requirement.fulfilled", {}))
    return {
        own: [
            (
                run + stream,
                kind,
                {
                    key: run + value if key in _IDS else item if key == "item_code" else value
                    for key, value in data.items()
                },
            )
            for stream, kind, data in events
        ]
        for own, events in mix.items()
    }


async def _produce(count: int, first: int, run: str) -> int:
    """`count` events of the history into the stack's topics, from requirement `first` on;
    returns the next requirement's number."""
    producer = new_producer(KAFKA, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    start = datetime.now(UTC) - timedelta(days=365)
    produced, n, pending = 0, first, []
    try:
        while produced < count:
            versions: dict[str, int] = {}
            for own, events in _history(run, n, start).items():
                for stream, kind, data in events:
                    versions[stream] = versions.get(stream, 0) + 1
                    stored = StoredEvent(
                        position=produced + 1, stream_id=stream, stream_version=versions[stream],
                        event_id=uuid.uuid4(), event_type=kind, schema_version=1, data=data,
                        meta=Metadata(actor="bench"), recorded_at=start + timedelta(minutes=n),
                    )  # fmt: skip
                    key, value, headers = envelope.encode(stored, REGISTRIES[own].source)
                    pending.append(await producer.send(own, value, key=key, headers=headers))
                    produced += 1
            n += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


async def _on_topics() -> int:
    """Events on the stack's topics now: the history a fresh stack reads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await consumer.start()
    try:
        # topics() answers names only; the partitions need the cluster's metadata
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, partition)
            for topic in (REQUESTS, ALLOCATIONS, DELIVERIES)
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        begins = await consumer.beginning_offsets(partitions) if partitions else {}
        return int(sum(ends.values()) - sum(begins.values()))
    finally:
        await consumer.stop()


async def _caught_up_rss() -> tuple[dict[str, float], float]:
    """A fresh stack on the topics as they are: each service's RSS (MB) once caught up, and
    how long the catch-up took."""
    database_url = await create_database()
    stack = Stack(database_url)
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(s) for s in SERVICES))
        took = await wait_caught_up(stack, SERVICES, give_up=3600)
        return {s: rss_mb(stack.processes[s].pid) for s in SERVICES}, took
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def run() -> list[Result]:
    run_id, produced, next_requirement = f"M{uuid.uuid4().hex[:6]}-", 0, 0
    stages: list[tuple[int, int, dict[str, float], float]] = []
    for size in HISTORY:
        if size > produced:
            started = time.perf_counter()
            next_requirement = await _produce(size - produced, next_requirement, run_id)
            produced = size
            print(f"    history of {size:,} produced in {time.perf_counter() - started:.0f} s")
        on_topics = await _on_topics()
        rss, took = await _caught_up_rss()
        print(f"    {size:,} ({on_topics:,} on the topics): {rss}, caught up in {took:.0f} s")
        stages.append((size, on_topics, rss, took))
    first_size, _, first, _ = stages[0]
    results = []
    for size, on_topics, rss, took in stages:
        for service in SERVICES:
            results.append(
                Result(
                    f"memory: {service} RSS caught up on a history of {size:,} events",
                    rss[service],
                    "MB",
                    baseline_name=f"same service, history of {first_size:,}",
                    baseline_value=first[service],
                    target=f"<= {TARGET_MB:.0f} MB" if size == HISTORY[-1] else None,
                    met=rss[service] <= TARGET_MB if size == HISTORY[-1] else None,
                    notes=f"{on_topics:,} events on the topics (others' runs included); "
                    f"caught up in {took:.0f} s; VmRSS, 1 MB = 10^6 bytes",
                )
            )
    return results
