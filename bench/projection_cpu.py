"""CPU per event of the projection's batch handler, without Kafka: a tool, not a benchmark module
(`make bench` runs `bench_*` modules only).

    .venv/bin/python -m bench.projection_cpu [--events N] [--database URL] [--repeat K]

Feeds N events of bench_projection's mix (`_scenario`), encoded and decoded as the consumer
decodes them (`envelope.encode` → `envelope.decode`, the raw value kept), through
`ReadModelWriter` into a fresh building generation, one transaction per batch of
`PROJECTION_BATCH_SIZE` messages of a topic, the topics' batches interleaved (deliveries first:
figures often arrive before their needs, as in a replay). Reports this process's CPU per event
(`time.process_time`: what Python spends; the database server's CPU is not in it) for the handler
and for the envelope codec, and a checksum of every read-model table (rows in key order): two
versions of the code that give the same checksum wrote the same read models.

Event ids and times are derived from the event's number, so the checksum depends only on what
the handler writes. Wall-clock figures on a shared machine are noise; CPU per event is not (or
much less): compare two versions of the code in the same session, alternating.

The default database is a fresh SQLite file (no infrastructure needed); `--database` takes a
PostgreSQL URL (`$DATABASE_URL`), where a schema of its own is created and dropped.

`--live` measures the live path instead: each event a poll of its own, in the order the events
were made, through the consumer's `Applier` (its look-up of applied events, the transaction,
its offsets), as the projection applies a light live load one event at a time. It reports CPU
per event of this process and of the database server's processes when they run on this machine
(`postgres` in /proc), after 200 events of warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import sqlalchemy as sa
from aiokafka import ConsumerRecord, TopicPartition

from bench.bench_projection import _scenario
from bench.procs import named_cpu_seconds
from services.projection import tables as t
from services.projection.consumers import ReadModelWriter, consumers
from services.projection.generations import Generation
from services.projection.settings import ProjectionSettings
from shared.contracts import REGISTRIES
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.domain import Metadata, StoredEvent
from shared.eventstore import EventStore, Transaction
from shared.messaging import envelope
from shared.messaging.consumer import Message
from shared.runtime import tune_gc

START = datetime(2026, 1, 1, tzinfo=UTC)
TOPICS = (DELIVERIES, ALLOCATIONS, REQUESTS)  # the order of a round of batches
LIVE_WARMUP = 200  # `--live`: events applied before the measurement starts


def stored_events(count: int) -> dict[str, list[StoredEvent]]:
    """`count` events of bench_projection's mix by topic, each stream's versions in order; ids
    and times from the event's number (deterministic)."""
    by_topic: dict[str, list[StoredEvent]] = {topic: [] for topic in TOPICS}
    made, n = 0, 0
    while made < count:
        versions: dict[str, int] = {}
        for topic, events in _scenario(n, START).items():
            for stream, kind, data in events:
                if made >= count:
                    break
                versions[stream] = versions.get(stream, 0) + 1
                at = START + timedelta(minutes=n, seconds=versions[stream])
                by_topic[topic].append(
                    StoredEvent(
                        position=made + 1, stream_id=stream, stream_version=versions[stream],
                        event_id=uuid.UUID(int=made + 1), event_type=kind, schema_version=1,
                        data=data, meta=Metadata(actor="bench", occurred_at=at), recorded_at=at,
                    )
                )  # fmt: skip
                made += 1
        n += 1
    return by_topic


def codec(by_topic: dict[str, list[StoredEvent]]) -> tuple[dict[str, list[Message]], float, float]:
    """The events as the consumer hands them over (decoded, raw value kept), and the CPU µs
    per event of encoding (the relay's side) and of decoding (every consumer's)."""
    encoded = []
    started = time.process_time()
    for topic, events in by_topic.items():
        source = REGISTRIES[topic].source
        encoded += [(topic, envelope.encode(e, source)) for e in events]
    encode_cpu = time.process_time() - started
    messages: dict[str, list[Message]] = {topic: [] for topic in by_topic}
    started = time.process_time()
    for topic, (_key, value, headers) in encoded:
        event = envelope.decode(headers, value)
        batch = messages[topic]
        batch.append(Message(topic, 0, len(batch), event, raw=value))
    decode_cpu = time.process_time() - started
    count = len(encoded) or 1
    return messages, encode_cpu / count * 1e6, decode_cpu / count * 1e6


async def replay(generation: Generation, messages: dict[str, list[Message]], batch: int) -> float:
    """Every message through the batch handler; returns the handler's CPU seconds (this
    process)."""
    writer = ReadModelWriter({topic: REGISTRIES[topic] for topic in messages})
    store = EventStore(generation.db)
    batches = {
        topic: [ms[i : i + batch] for i in range(0, len(ms), batch)]
        for topic, ms in messages.items()
    }
    cpu = 0.0
    for i in range(max(len(b) for b in batches.values())):
        for topic in TOPICS:
            if i < len(batches[topic]):
                async with generation.db.engine.begin() as conn:
                    started = time.process_time()
                    await writer(Transaction(conn, store), batches[topic][i])
                    cpu += time.process_time() - started
    return cpu


async def live(
    generation: Generation, by_topic: dict[str, list[StoredEvent]]
) -> tuple[float, float]:
    """Each event a poll of its own through the consumer's `Applier`, in the order made, after
    `LIVE_WARMUP` of them; returns the CPU seconds of this process and of the database server."""
    made = sorted(
        ((event.position, topic, event) for topic, events in by_topic.items() for event in events),
        key=itemgetter(0),
    )
    records, offsets = [], dict.fromkeys(by_topic, 0)
    for _, topic, event in made:
        key, value, headers = envelope.encode(event, REGISTRIES[topic].source)
        records.append(
            ConsumerRecord(topic, 0, offsets[topic], 0, 0, key, value, None, len(key), len(value),
                           headers)
        )  # fmt: skip
        offsets[topic] += 1
    applier = generation.consumer.applier
    for record in records[:LIVE_WARMUP]:
        await applier.apply({TopicPartition(record.topic, 0): [record]})
    cpu, server = time.process_time(), named_cpu_seconds("postgres")
    for record in records[LIVE_WARMUP:]:
        await applier.apply({TopicPartition(record.topic, 0): [record]})
    return time.process_time() - cpu, named_cpu_seconds("postgres") - server


async def checksum(generation: Generation) -> str:
    """SHA-256 over every read-model table's rows, in key order."""
    digest = hashlib.sha256()
    async with generation.db.engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            if table is t.generations:
                continue
            order = list(table.primary_key.columns)
            for row in await conn.execute(sa.select(table).order_by(*order)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()[:16]


async def measure_live(database: str, count: int) -> tuple[float, float]:
    """(this process's, the database server's) CPU µs per event of `live`."""
    generation = await _generation(database, building=False)
    try:
        tune_gc()
        cpu, server = await live(generation, stored_events(count + LIVE_WARMUP))
        return cpu / count * 1e6, server / count * 1e6
    finally:
        await generation.db.drop_schema()
        await generation.db.dispose()


async def _generation(database: str, *, building: bool) -> Generation:
    """A fresh generation of the projection in a schema of its own."""
    settings = ProjectionSettings(
        database_url=database,
        projection_schema=f"cpu_{uuid.uuid4().hex[:8]}",
        consumer_group_prefix="cpu.",
        requests_topic=REQUESTS,
        allocations_topic=ALLOCATIONS,
        deliveries_topic=DELIVERIES,
    )
    (spec,) = consumers(settings)
    generation = Generation(1, settings, spec, lambda *_: None, building=building)
    await generation.db.drop_schema()
    await generation.prepare()
    return generation


async def measure(database: str, count: int, batch: int) -> tuple[float, float, float, str]:
    generation = await _generation(database, building=True)
    try:
        tune_gc()  # as the service does when it starts
        messages, encode_us, decode_us = codec(stored_events(count))
        cpu = await replay(generation, messages, batch)
        events = sum(len(ms) for ms in messages.values())
        return cpu / events * 1e6, encode_us, decode_us, await checksum(generation)
    finally:
        await generation.db.drop_schema()
        await generation.db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2_000, help="messages per transaction")
    parser.add_argument("--database", help="a PostgreSQL URL; default: a fresh SQLite file")
    parser.add_argument("--repeat", type=int, default=1, help="runs (the median is reported)")
    parser.add_argument("--live", action="store_true", help="one event per poll (see above)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        database = args.database or f"sqlite+aiosqlite:///{Path(scratch) / 'cpu.db'}"
        if args.live:
            lives = [await measure_live(database, args.events) for _ in range(args.repeat)]
            print(
                f"{args.events:,} events one per poll, {database.split(':')[0]}: "
                f"{statistics.median(r[0] for r in lives):,.0f} µs/event of CPU here, "
                f"{statistics.median(r[1] for r in lives):,.0f} in the database server "
                f"(runs: {', '.join(f'{r[0]:,.0f} / {r[1]:,.0f}' for r in lives)})"
            )
            return
        runs = [await measure(database, args.events, args.batch) for _ in range(args.repeat)]
    handler = statistics.median(r[0] for r in runs)
    sums = {r[3] for r in runs}
    print(
        f"{args.events:,} events, {database.split(':')[0]}: handler "
        f"{handler:.1f} µs/event of CPU (runs: {', '.join(f'{r[0]:.1f}' for r in runs)}); "
        f"envelope encode {statistics.median(r[1] for r in runs):.2f}, "
        f"decode {statistics.median(r[2] for r in runs):.2f} µs/event; "
        f"checksum {' / '.join(sorted(sums))}"
    )


if __name__ == "__main__":
    asyncio.run(main())
