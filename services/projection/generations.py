"""Generations of the read models: the one that answers, and the one a rebuild is filling.

Each generation is a schema of its own (`<base>_g<n>`; a file of its own on SQLite) with its own
consumer group (`projection-g<n>`) and tracking records. A rebuild creates generation n+1,
replays every topic into it from offset 0 while generation n keeps answering, and swaps it in
once it has reached the end offsets the topics had when the rebuild began; the old generation's
consumer is then stopped and its schema dropped. The base schema's `generations` table says
which generation is active, so a restart finds it; a rebuild interrupted by a crash is marked
failed and dropped at the next start (run it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from services.projection.consumers import ReadModelWriter, seed_items
from services.projection.settings import ProjectionSettings
from shared.contracts import CATALOGUES
from shared.db import Database
from shared.db.migrate import upgrade
from shared.eventstore import EventStore
from shared.messaging.consumer import EventConsumer, Message
from shared.readmodels import sink_for
from shared.web.problems import Problem

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Pulse:
    """Wakes every waiter when something new was committed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def next(self) -> asyncio.Event:
        """Take this before checking for a change, then wait on it: no wake-up is lost."""
        return self._event


async def wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(seconds, 0))


# The consumer loads rows by key, a few thousand at a time (`= ANY($1)`). With the default
# random_page_cost (4, for spinning disks) the planner prefers a sequential scan to that many
# index probes once a table holds some 100,000 rows — a scan per batch, so a replay slows down
# as it goes — though every page it needs is in memory. 1.1 is the usual value for SSDs.
PLANNER_SETTINGS = {"random_page_cost": "1.1"}

# While a rebuild fills a generation nobody reads it, and a database crash loses it anyway (the
# rebuild is abandoned): its tables are UNLOGGED (no WAL per row) and carry only the indexes
# the consumer needs (primary keys, the audit's unique event id). `finish` writes them to the WAL
# once, logged from then on, and builds the other indexes before the swap.
_MARKER = "building_marker"  # unlogged like the rest: a crash empties it too
# `finish` works on this many connections at once (PostgreSQL gives each one core); the audit
# table is most of the work, the other tables fit beside it.
FINISH_CONNECTIONS = 2


def _deferred_indexes() -> list[tuple[str, sa.Index]]:
    """(table name, index) of the indexes a building generation goes without."""
    return [(table.name, i) for table in t.metadata.sorted_tables for i in table.indexes
            if not i.unique]  # fmt: skip


async def _schema_tables(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    return sorted(name for (name,) in result)


async def _build_lightly(conn: AsyncConnection) -> None:
    for _table, index in _deferred_indexes():
        await conn.execute(sa.text(f'DROP INDEX "{index.name}"'))
    for name in await _schema_tables(conn):
        await conn.execute(sa.text(f'ALTER TABLE "{name}" SET UNLOGGED'))
    await conn.execute(sa.text(f'CREATE UNLOGGED TABLE "{_MARKER}" (present boolean)'))
    await conn.execute(sa.text(f'INSERT INTO "{_MARKER}" VALUES (true)'))


async def _intact(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(sa.text(f'SELECT count(*) FROM "{_MARKER}"')))


async def _make_durable(db: Database) -> None:
    """Every table but the marker logged and given its deferred indexes, a table per
    transaction, largest first, on FINISH_CONNECTIONS connections. A crash meanwhile empties
    the marker, which is dropped only afterwards."""
    async with db.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename <> :marker ORDER BY"
                " pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass) DESC"
            ),
            {"marker": _MARKER},
        )
        queue = [name for (name,) in result]
    deferred = _deferred_indexes()

    async def lane() -> None:
        while queue:
            name = queue.pop(0)
            async with db.engine.begin() as conn:
                await conn.execute(sa.text(f'ALTER TABLE "{name}" SET LOGGED'))
                for table, index in deferred:  # after SET LOGGED, which would rebuild them again
                    if table == name:
                        await conn.execute(sa.schema.CreateIndex(index))

    async with asyncio.TaskGroup() as lanes:
        for _ in range(FINISH_CONNECTIONS):
            lanes.create_task(lane())


class Generation:
    def __init__(
        self,
        number: int,
        settings: ProjectionSettings,
        writer: ReadModelWriter,
        on_commit: Callable[[Generation, Sequence[Message]], None],
        *,
        building: bool = False,
    ) -> None:
        self.number = number
        # Filled by a rebuild: nobody reads it until the swap (see `prepare` and `finish`).
        self.building = building
        self.schema = f"{settings.projection_schema}_g{number}"
        self.db = Database(
            settings.database_url, self.schema, pool_size=5, server_settings=PLANNER_SETTINGS
        )
        self.store = EventStore(self.db)
        self.pulse = Pulse()
        self.consumer = EventConsumer(
            f"{settings.consumer_group_prefix}projection-g{number}",
            list(settings.topics),
            None,
            self.store,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            max_attempts=settings.consumer_max_attempts,
            batch_size=settings.projection_batch_size,
            stall_seconds=settings.consumer_stall_seconds,
            batch_handler=writer,
            on_commit=lambda messages: on_commit(self, messages),
            # A rebuild replays everything; only the first generation may attach at the end.
            start_at=settings.consumer_start_at if number == 1 else "earliest",
            # Every message applied has its audit row: that is its tracking record too.
            recorded_by_handler=t.audit.c.event_id,
        )
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        await upgrade(self.db, MIGRATIONS)
        async with self.db.engine.begin() as conn:
            await seed_items(conn, sink_for(self.db))
            if self.building and self.db.postgres:
                await _build_lightly(conn)

    async def finish(self) -> None:
        """Make a building generation ready to answer: its tables logged, its indexes built.
        Fails if a database crash emptied it meanwhile (the rebuild is then abandoned)."""
        if not (self.building and self.db.postgres):
            return
        async with self.consumer.paused():
            if not await self.intact():
                raise RuntimeError("the generation was emptied by a database crash")
            await _make_durable(self.db)
            async with self.db.engine.begin() as conn:
                if not await _intact(conn):  # a crash while it was being made durable
                    raise RuntimeError("the generation was emptied by a database crash")
                await conn.execute(sa.text(f'DROP TABLE "{_MARKER}"'))
        self.building = False

    async def intact(self) -> bool:
        """False once a database crash has emptied a building generation's unlogged tables."""
        if not (self.building and self.db.postgres):
            return True
        async with self.db.engine.connect() as conn:
            return await _intact(conn)

    def start(self) -> None:
        self._task = asyncio.create_task(self.consumer.run(), name=self.consumer.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def drop(self) -> None:
        await self.stop()
        await self.db.drop_schema()
        await self.db.dispose()

    async def processed(self, event_id: uuid.UUID) -> bool:
        return await self.consumer.processed(event_id)


@dataclass
class RebuildProgress:
    state: str = "idle"  # idle | building | swapped | failed
    generation: int | None = None
    applied: int = 0  # messages of the target range consumed so far
    total: int = 0  # messages in the topics when the rebuild began
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        return 1.0 if not self.total else min(1.0, self.applied / self.total)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"progress": round(self.fraction, 4)}


class Projector:
    """Runs the active generation, builds the next one on request and swaps it in."""

    def __init__(self, settings: ProjectionSettings, base: Database) -> None:
        self.settings = settings
        self.base = base
        catalogues = {topic: CATALOGUES[own] for topic, own in settings.topics.items()}
        self.writer = ReadModelWriter(catalogues)
        self.active: Generation | None = None
        self.building: Generation | None = None
        self.rebuild = RebuildProgress()
        self.commits = Pulse()  # the active generation committed a batch
        # Told when the active generation changes, or commits (for the live stream).
        self.on_switch: list[Callable[[Generation, Generation | None], Any]] = []
        self.on_applied: list[Callable[[], None]] = []
        self._rebuild_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        async with self.base.engine.begin() as conn:
            rows = (await conn.execute(sa.select(t.generations))).all()
        for row in rows:
            if row.state == "building":  # a rebuild that did not survive a restart
                await self._abandon(row.number, "interrupted by a restart")
        active = next((r.number for r in rows if r.state == "active"), None)
        if active is None:
            active = 1
            async with self.base.engine.begin() as conn:
                await conn.execute(
                    t.generations.insert().values(
                        number=1,
                        schema_name=f"{self.settings.projection_schema}_g1",
                        state="active",
                        created_at=datetime.now(UTC),
                        activated_at=datetime.now(UTC),
                    )
                )
        generation = Generation(active, self.settings, self.writer, self._committed)
        await generation.prepare()
        self.active = generation
        await self._switched(generation, None)
        if self.settings.consumers_enabled:
            generation.start()

    async def stop(self) -> None:
        if self._rebuild_task is not None:
            self._rebuild_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rebuild_task
        for generation in (self.building, self.active):
            if generation is not None:
                await generation.stop()
                await generation.db.dispose()

    @property
    def current(self) -> Generation:
        assert self.active is not None, "the projector has not started"
        return self.active

    def _committed(self, generation: Generation, _messages: Sequence[Message]) -> None:
        generation.pulse.fire()
        if generation is self.active:
            self.commits.fire()
            for listener in self.on_applied:
                listener()

    async def _switched(self, new: Generation, old: Generation | None) -> None:
        for listener in self.on_switch:
            result = listener(new, old)
            if asyncio.iscoroutine(result):
                await result

    # -- read-your-writes ------------------------------------------------------------------

    async def wait_applied(self, event_id: uuid.UUID, seconds: float) -> bool:
        """Wait up to `seconds` until the active generation has applied `event_id`."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            wake = self.commits.next()
            if await self.current.processed(event_id):
                return True
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await wait(wake, min(remaining, 0.5))

    # -- rebuild ---------------------------------------------------------------------------

    async def reserve_rebuild(self, conn: AsyncConnection) -> int:
        """Record a new generation as building (in the caller's transaction); 409 if one is."""
        if self.building is not None or self.rebuild.state == "building":
            raise Problem(
                409,
                "Rebuild already running",
                f"Generation {self.rebuild.generation} is being built; watch GET /admin/status.",
                kind="rebuild-running",
            )
        number = int(await conn.scalar(sa.select(sa.func.max(t.generations.c.number))) or 0) + 1
        await conn.execute(
            t.generations.insert().values(
                number=number,
                schema_name=f"{self.settings.projection_schema}_g{number}",
                state="building",
                created_at=datetime.now(UTC),
            )
        )
        self.rebuild = RebuildProgress(
            state="building", generation=number, started_at=datetime.now(UTC)
        )
        return number

    def launch_rebuild(self, number: int) -> None:
        self._rebuild_task = asyncio.create_task(self._rebuild(number), name=f"rebuild-{number}")

    async def _rebuild(self, number: int) -> None:
        generation = Generation(number, self.settings, self.writer, self._committed)
        self.building = generation
        try:
            await generation.db.drop_schema()  # leftovers of an earlier attempt
            generation = Generation(
                number, self.settings, self.writer, self._committed, building=True
            )
            self.building = generation
            await generation.prepare()
            targets = await end_offsets(
                self.settings.kafka_bootstrap_servers, list(self.settings.topics)
            )
            self.rebuild.total = sum(targets.values())
            generation.start()
            await self._replay(generation, targets)
            await generation.finish()
            await self._swap(generation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("rebuild of generation %d failed", number)
            self.rebuild.state, self.rebuild.error = "failed", repr(exc)
            self.rebuild.finished_at = datetime.now(UTC)
            self.building = None
            await self._abandon(number, repr(exc), generation)

    async def _replay(self, generation: Generation, targets: dict[TopicPartition, int]) -> None:
        """Until `generation` has reached `targets`, with helper processes on PostgreSQL; they
        have stopped when this returns, so that nothing writes to it while it is finished."""
        from services.projection.replay import ReplayHelpers  # (it imports this module)

        extra = self.settings.projection_rebuild_processes - 1 if self.base.postgres else 0
        helpers = ReplayHelpers(self.settings, generation.number, extra)
        try:
            await helpers.start()
            while not await self._caught_up(generation, targets):
                await wait(generation.pulse.next(), 0.5)
        finally:
            await helpers.stop()

    async def _caught_up(self, generation: Generation, targets: dict[TopicPartition, int]) -> bool:
        if not await generation.intact():
            raise RuntimeError("the generation was emptied by a database crash")
        stored = await generation.consumer.stored_offsets(list(targets))
        self.rebuild.applied = sum(min(stored.get(tp, 0), end) for tp, end in targets.items())
        return all(stored.get(tp, 0) >= end for tp, end in targets.items() if end > 0)

    async def _swap(self, new: Generation) -> None:
        old = self.current
        async with self.base.engine.begin() as conn:
            await conn.execute(
                t.generations.update()
                .where(t.generations.c.number == old.number)
                .values(state="retired")
            )
            await conn.execute(
                t.generations.update()
                .where(t.generations.c.number == new.number)
                .values(state="active", activated_at=datetime.now(UTC))
            )
        self.active, self.building = new, None
        self.rebuild.state, self.rebuild.finished_at = "swapped", datetime.now(UTC)
        await self._switched(new, old)
        self.commits.fire()
        log.info("projection generation %d swapped in (was %d)", new.number, old.number)
        await old.drop()

    async def _abandon(
        self, number: int, reason: str, generation: Generation | None = None
    ) -> None:
        log.warning("abandoning projection generation %d: %s", number, reason)
        generation = generation or Generation(number, self.settings, self.writer, self._committed)
        with contextlib.suppress(Exception):
            await generation.drop()
        async with self.base.engine.begin() as conn:
            await conn.execute(
                t.generations.update()
                .where(t.generations.c.number == number)
                .values(state="failed")
            )

    # -- status ----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        generation = self.current
        consumer = generation.consumer
        lag = consumer.lag
        stored = await consumer.stored_offsets(list(lag))
        partitions = [
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "next_offset": stored.get(tp, 0),
                "lag": lag[tp],
            }
            for tp in sorted(lag, key=lambda tp: (tp.topic, tp.partition))
        ]
        health = consumer.health()
        return {
            "generation": generation.number,
            "schema": generation.schema,
            "consumer": consumer.name,
            "running": health.running,
            "events_applied": consumer.applied,
            "dead_lettered": consumer.dead_lettered,
            "last_event_time": consumer.last_event_time,
            "lag": sum(lag.values()),
            "partitions": partitions,
            "rebuild": self.rebuild.as_dict(),
        }


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of `topics` now: what a rebuild must reach."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = []
        for topic in topics:
            numbers = cluster.partitions_for_topic(topic)
            if not numbers:
                raise LookupError(f"topic {topic} has no partitions (does it exist?)")
            partitions += [TopicPartition(topic, p) for p in sorted(numbers)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()
