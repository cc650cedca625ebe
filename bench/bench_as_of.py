"""The board as of a date beside the live board, over the read models of 1,000,000 events
(PostgreSQL), in the same run.

The read models are written by the projection's own batch handler (`ReadModelWriter`: the
projector, the row upserts, the audit trail and the history tables, in one transaction per
batch of 5,000 events of a topic) from events made in this process — no Kafka: what is timed is
the query, and the handler is the path every event takes in production. The events are
bench_projection's mix, one requirement's way per 13 events (submission, endorsement, a pledge
announced and confirmed, an allocation proposed and approved, a shipment planned, dispatched,
at the hub, inspected, departed, handed over, received), dated by business time: requirement n
starts on day n x 365 / requirements of the year before now and its steps follow over 12 days.
The topics' batches interleave, so a requirement's figures often arrive before its submission.

Timed (median of REPEATS, after one warm-up each): `queries.board` — the board's first page
(50 rows, by priority, need date and id), as the route asks it — live, and as of the middle of
that year (about half the events dated before it) and as of today (all of them).

BENCH_AS_OF_EVENTS (default 1,000,000) scales it.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from bench.bench_projection import _scenario
from bench.report import Result
from services.projection import queries
from services.projection import tables as t
from services.projection.as_of import tables_as_of
from services.projection.consumers import ReadModelWriter, consumers
from services.projection.generations import Generation
from services.projection.settings import ProjectionSettings
from shared.contracts import REGISTRIES
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.domain import Metadata
from shared.messaging.consumer import Message
from shared.messaging.envelope import Envelope

DATABASE = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://aidline:aidline@127.0.0.1:5433/aidline"
)
EVENTS = int(os.environ.get("BENCH_AS_OF_EVENTS", "1000000"))
# Keep the filled schema (named in the notes) to look at its plans; drop it by hand afterwards.
KEEP = os.environ.get("BENCH_AS_OF_KEEP") == "1"
BATCH = 5_000
REPEATS = 5
TARGET_MS = 1000.0
EVENTS_PER_REQUIREMENT = 13
# The business day of each step of a requirement's way, after its first.
STEP_DAYS = {
    "requirement.submitted": 0, "requirement.endorsed": 1, "pledge.announced": 0,
    "pledge.confirmed": 1, "allocation.proposed": 2, "allocation.approved": 3,
    "shipment.planned": 4, "shipment.dispatched": 5, "shipment.arrived_at_hub": 7,
    "shipment.inspected": 8, "shipment.departed_hub": 9, "shipment.handed_over": 11,
    "shipment.received": 12,
}  # fmt: skip


def _messages(count: int, year_start: datetime) -> dict[str, list[Message]]:
    """`count` events, by topic, each dated by business time."""
    requirements = max(1, count // EVENTS_PER_REQUIREMENT)
    by_topic: dict[str, list[Message]] = {REQUESTS: [], ALLOCATIONS: [], DELIVERIES: []}
    made = 0
    for n in range(requirements):
        first = year_start + timedelta(days=n * 365 / requirements)
        versions: dict[str, int] = {}
        for topic, events in _scenario(n, first).items():
            for stream, kind, data in events:
                if made >= count:
                    return by_topic
                versions[stream] = versions.get(stream, 0) + 1
                occurred = first + timedelta(days=STEP_DAYS[kind])
                env = Envelope(
                    event_id=uuid.uuid4(), source=REGISTRIES[topic].source, event_type=kind,
                    subject=stream, time=occurred, stream_version=versions[stream],
                    position=made + 1, schema_version=1,
                    meta=Metadata(actor="bench", occurred_at=occurred), data=data,
                )  # fmt: skip
                messages = by_topic[topic]
                by_topic[topic].append(Message(topic, 0, len(messages), env))
                made += 1
    return by_topic


async def _fill(generation: Generation, by_topic: dict[str, list[Message]]) -> float:
    """Every message through the projection's batch handler, the topics' batches interleaved;
    returns the seconds it took."""
    writer = ReadModelWriter({topic: REGISTRIES[topic] for topic in by_topic})
    batches = {
        topic: [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
        for topic, messages in by_topic.items()
    }
    started = time.perf_counter()
    for i in range(max(len(b) for b in batches.values())):
        for topic in (DELIVERIES, ALLOCATIONS, REQUESTS):  # figures before their needs
            if i < len(batches[topic]):
                async with generation.db.engine.begin() as conn:
                    # the handler reads only the transaction's connection and database
                    tx = SimpleNamespace(store=SimpleNamespace(db=generation.db), conn=conn)
                    await writer(tx, batches[topic][i])  # type: ignore[arg-type]
    return time.perf_counter() - started


async def _median(ask: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    answer = await ask()  # warm-up
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = await ask()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, answer  # ms


async def run() -> list[Result]:
    run_id = uuid.uuid4().hex[:8]
    settings = ProjectionSettings(
        database_url=DATABASE,
        projection_schema=f"bench_as_of_{run_id}",
        consumer_group_prefix=f"bench-{run_id}.",
    )
    (spec,) = consumers(settings)
    generation = Generation(1, settings, spec, lambda *_: None)
    now = datetime.now(UTC).replace(microsecond=0)
    year_start = now - timedelta(days=365 + 13)
    middle = (year_start + timedelta(days=182)).date()
    try:
        await generation.prepare()
        by_topic = _messages(EVENTS, year_start)
        events = sum(len(m) for m in by_topic.values())
        fill = await _fill(generation, by_topic)
        del by_topic
        async with generation.db.engine.connect() as conn:
            if generation.db.dialect.name == "postgresql":  # as autovacuum would by now
                await conn.execute(sa.text("ANALYZE"))
            counts = {
                table.name: int(await conn.scalar(sa.select(sa.func.count()).select_from(table)))
                for table in (t.requirements, t.requirement_history, t.requirement_flows)
            }
            live, live_rows = await _median(lambda: queries.board(conn, limit=50))
            as_of_middle, middle_rows = await _median(
                lambda: queries.board(conn, limit=50, tables=tables_as_of(middle))
            )
            as_of_today, today_rows = await _median(
                lambda: queries.board(conn, limit=50, tables=tables_as_of(now.date()))
            )
            mid_total = await conn.scalar(
                sa.select(sa.func.count()).select_from(tables_as_of(middle).requirements)
            )
    finally:
        if not KEEP:
            await generation.db.drop_schema()
        await generation.db.dispose()
    assert len(live_rows) == len(middle_rows) == len(today_rows) == 50
    shape = (
        f"{events:,} events: {counts['requirements']:,} requirements, as many pledges, "
        f"allocations and shipments; {counts['requirement_history']:,} requirement versions, "
        f"{counts['requirement_flows']:,} flows; {mid_total:,} requirements on the board as of "
        f"{middle.isoformat()}; written through the projection's batch handler in {fill:.0f} s "
        f"({events / fill:,.0f} events/s); median of {REPEATS}, first page of 50 rows"
        + (f"; kept in schema {generation.schema}" if KEEP else "")
    )
    return [
        Result(
            name="board as of the middle of the year: ms per query (PostgreSQL)",
            value=as_of_middle,
            unit="ms",
            baseline_name="the live board, same page, same run",
            baseline_value=live,
            target=f"<= {TARGET_MS:,.0f} ms",
            met=as_of_middle <= TARGET_MS,
            notes=shape,
        ),
        Result(
            name="board as of today (every event counted): ms per query (PostgreSQL)",
            value=as_of_today,
            unit="ms",
            baseline_name="the live board, same page, same run",
            baseline_value=live,
            target=f"<= {TARGET_MS:,.0f} ms",
            met=as_of_today <= TARGET_MS,
            notes="as above",
        ),
    ]
