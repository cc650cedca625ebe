"""Projection replay: events per second from fresh topics into the read models on PostgreSQL,
beside a raw aiokafka consumer reading the same topics in the same run.

The replay is a rebuild's: into a fresh generation, with the rebuild's helper processes
(`PROJECTION_REBUILD_PROCESSES`, default 2 in all), timed until it is ready to swap in (the
finish — tables made durable, secondary indexes built — included).

BENCH_PROJECTION_EVENTS (default 1,000,000) scales it; the events are a realistic mix: each
requirement's way from submission through pledge, allocation and shipment to handover.

The events are produced, and the raw consumer reads them, in processes of their own, so that
neither leaves anything in (or takes anything from) the process that replays, which stands for
the projection service. The raw consumer reads before and after the replay, and the baseline is
the mean of the two: on a shared machine the speed of either side drifts by 10-20 %
within a minute, and a baseline taken on one side of the replay only carries that drift into
the ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.report import Result
from services.projection.consumers import consumers
from services.projection.generations import Generation
from services.projection.rebuild import ReplayHelpers, end_offsets
from services.projection.settings import ProjectionSettings
from shared.contracts import REGISTRIES
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.domain import Metadata, StoredEvent
from shared.messaging import envelope
from shared.messaging.kafka import new_producer
from shared.messaging.topics import TopicSpec, ensure_topics
from shared.runtime import run_loop, tune_gc

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
DATABASE = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://aidline:aidline@127.0.0.1:5433/aidline"
)
EVENTS = int(os.environ.get("BENCH_PROJECTION_EVENTS", "1000000"))
# Issue 20 (the first round's: 20,000 events/s and 0.25x).
TARGET_RATE, TARGET_RATIO = 45_000, 0.40


def _scenario(n: int, start: datetime) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """One requirement's way: 4 request events, 2 allocation events, 7 delivery events."""
    r, p, a, s = f"R-{n}", f"P-{n}", f"A-{n}", f"S-{n}"
    item = ("ART-155-HE", "AD-PATRIOT-PAC3", "DR-FPV-KIT", "ARM-LEO2A4")[n % 4]
    donor = ("DE", "PL", "NL", "FR", "US", "GB", "SE")[n % 7]
    hub = ("PL-RZE", "RO-SUC")[n % 2]
    day = (start + timedelta(days=n % 30)).date().isoformat()
    return {
        REQUESTS: [
            (r, "requirement.submitted", {"requirement_id": r, "item_code": item, "quantity": 100,
             "unit": "u", "priority": 1 + n % 4, "needed_by": day, "destination": "Lviv",
             "justification": "bench"}),
            (r, "requirement.endorsed", {"priority": 1 + n % 4, "decision_id": "D-1"}),
            (p, "pledge.announced", {"pledge_id": p, "donor": donor, "item_code": item,
             "quantity": 100, "unit": "u", "source": "stock", "available_from": day,
             "value_eur": 100000.0}),
            (p, "pledge.confirmed", {"decision_id": "D-1"}),
        ],
        ALLOCATIONS: [
            (a, "allocation.proposed", {"allocation_id": a, "requirement_id": r, "pledge_id": p,
             "item_code": item, "quantity": 100, "hub": hub, "handover_by": day,
             "rationale": "bench"}),
            (a, "allocation.approved", {"approved_by": "planner"}),
        ],
        DELIVERIES: [
            (s, "shipment.planned", {"shipment_id": s, "allocation_id": a, "requirement_id": r,
             "pledge_id": p, "donor": donor, "item_code": item, "quantity": 100, "hub": hub,
             "handover_point": "K"}),
            (s, "shipment.dispatched", {"mode": "road", "carrier_ref": f"T-{n}", "serials": []}),
            (s, "shipment.arrived_at_hub", {"hub": hub}),
            (s, "shipment.inspected", {"result": "passed", "notes": ""}),
            (s, "shipment.departed_hub", {}),
            (s, "shipment.handed_over", {"received_good": 100, "damaged": 0, "short": 0,
             "serials": []}),
            (s, "shipment.received", {}),
        ],
    }  # fmt: skip


async def _produce(topics: dict[str, str], count: int) -> int:
    producer = new_producer(KAFKA, linger_ms=20, max_batch_size=512 * 1024, acks=1,
                            enable_idempotence=False)  # fmt: skip
    await producer.start()
    start = datetime.now(UTC) - timedelta(days=30)
    produced = 0
    try:
        n = 0
        pending = []
        while produced < count:
            versions: dict[str, int] = {}
            for own, events in _scenario(n, start).items():
                for stream, kind, data in events:
                    if produced >= count:
                        break
                    versions[stream] = versions.get(stream, 0) + 1
                    stored = StoredEvent(
                        position=produced + 1, stream_id=stream, stream_version=versions[stream],
                        event_id=uuid.uuid4(), event_type=kind, schema_version=1, data=data,
                        meta=Metadata(actor="bench"), recorded_at=start + timedelta(minutes=n),
                    )  # fmt: skip
                    key, value, headers = envelope.encode(stored, REGISTRIES[own].source)
                    pending.append(
                        await producer.send(topics[own], value, key=key, headers=headers)
                    )
                    produced += 1
            n += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return produced


async def _in_own_process(*args: str) -> str:
    """What `python -m bench.bench_projection *args` prints (see the end of this module)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_projection", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"bench.bench_projection {args[0]} failed (exit {process.returncode})")
    return out.decode()


async def _raw(targets: dict[TopicPartition, int]) -> float:
    """The baseline: a plain aiokafka consumer, nothing tuned, in a process of its own."""
    spec = json.dumps([[tp.topic, tp.partition, end] for tp, end in targets.items()])
    return float(await _in_own_process("raw", spec))


async def _read_raw(targets: dict[TopicPartition, int]) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False,
                                max_poll_records=2000)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(list(targets))
        await consumer.seek_to_beginning(*targets)
        total, count = sum(targets.values()), 0
        started = time.perf_counter()
        while count < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            count += sum(len(records) for records in batches.values())
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _projection(
    settings: ProjectionSettings, targets: dict[TopicPartition, int]
) -> tuple[float, float]:
    """A rebuild's replay: a fresh generation filled from offset 0, timed until it is ready to
    swap in (its tables made durable and indexed). Returns (events/s, seconds of the finish)."""

    def generation() -> Generation:
        (spec,) = consumers(settings)
        return Generation(1, settings, spec, lambda *_: None, building=True)

    await generation().db.drop_schema()
    building = generation()
    await building.prepare()
    tune_gc()  # as the service does when it starts
    helpers = ReplayHelpers(settings, building.number, settings.projection_rebuild_processes - 1)
    try:
        started = time.perf_counter()
        building.start()
        await helpers.start()
        while True:
            stored = await building.consumer.stored_offsets(list(targets))
            if all(stored.get(tp, 0) >= end for tp, end in targets.items() if end):
                break
            await asyncio.sleep(0.2)
        await helpers.stop()
        replayed = time.perf_counter()
        await building.finish()
        finished = time.perf_counter()
        return sum(targets.values()) / (finished - started), finished - replayed
    finally:
        await helpers.stop()
        await building.drop()


async def run() -> list[Result]:
    run_id = uuid.uuid4().hex[:8]
    topics = {own: f"bench.{run_id}.{own}" for own in (REQUESTS, ALLOCATIONS, DELIVERIES)}
    await ensure_topics(KAFKA, [TopicSpec(name) for name in topics.values()])
    try:
        produced = int(await _in_own_process("produce", json.dumps(topics), str(EVENTS)))
        targets = await end_offsets(KAFKA, list(topics.values()))
        raw_before = await _raw(targets)
        settings = ProjectionSettings(
            database_url=DATABASE,
            kafka_bootstrap_servers=KAFKA,
            projection_schema=f"bench_{run_id}",
            consumer_group_prefix=f"bench-{run_id}.",
            requests_topic=topics[REQUESTS],
            allocations_topic=topics[ALLOCATIONS],
            deliveries_topic=topics[DELIVERIES],
        )
        rate, finish = await _projection(settings, targets)
        raw_after = await _raw(targets)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.delete_topics(list(topics.values()))
        finally:
            await admin.close()
    raw = (raw_before + raw_after) / 2
    return [
        Result(
            name="projection replay: events/s into the read models (PostgreSQL)",
            value=rate,
            unit="events/s",
            baseline_name="raw aiokafka consumer, same topics, mean of before and after",
            baseline_value=raw,
            target=f">= {TARGET_RATE:,} events/s and >= {TARGET_RATIO:.0%} of raw",
            met=rate >= TARGET_RATE and rate >= TARGET_RATIO * raw,
            notes=f"{produced:,} events, 3 topics x 3 partitions; "
            f"{settings.projection_rebuild_processes} processes; the finish took {finish:.1f} s; "
            f"raw consumer {raw_before:,.0f} events/s before the replay, {raw_after:,.0f} after",
        )
    ]


if __name__ == "__main__":  # the producer's and the raw consumer's processes
    if sys.argv[1] == "produce":
        print(run_loop(_produce(json.loads(sys.argv[2]), int(sys.argv[3]))))
    else:
        spec = json.loads(sys.argv[2])
        targets = {TopicPartition(topic, partition): end for topic, partition, end in spec}
        print(run_loop(_read_raw(targets)))
