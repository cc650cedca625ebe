"""Generations of the read models: the one that answers, and the one a rebuild is filling.

Each generation is a schema of its own (`<base>_g<n>`; a file of its own on SQLite) with its own
consumer group (`projection-g<n>`) and tracking records. A rebuild (`rebuild.py`) creates
generation n+1 and fills it while generation n keeps answering; `ReadModels.swap` then makes it
the active one, stops the old generation's consumer and drops its schema. The base schema's
`generations` table says which generation is active, so a restart finds it; a rebuild
interrupted by a crash is marked failed and dropped at the next start (run it again).

Several instances of the service share the generations: the one rebuilding holds a lock for as
long as it builds (another instance starting meanwhile leaves its generation alone; one whose
builder died abandons it), and announces its swap, upon which every other instance takes the
new generation too (`follow_commits`) before the old one is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from services.projection import tables as t
from services.projection.consumers import seed_items
from services.projection.pulse import Pulse
from services.projection.settings import ProjectionSettings
from shared.db import Database
from shared.db.migrate import current_revision, upgrade, upgrade_apart
from shared.eventstore import EventStore
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.kafka import KafkaConnection
from shared.messaging.topics import TopicSettings
from shared.readmodels import sink_for
from shared.runtime import ConsumerSpec
from shared.supervision import Backoff

# A generation's sessions. The consumer loads rows by key, a few thousand at a time
# (`= ANY($1)`). With PostgreSQL's default random_page_cost (4, for spinning disks) the planner
# prefers a sequential scan to that many index probes once a table holds some 100,000 rows — a
# scan per batch, so a replay slows down as it goes — though every page it needs is in memory.
# 1.1 is the usual value for SSDs. Commits are durable even where the server's default is
# `synchronous_commit = off`: a crash must not lose a commit the consumer, still running, has
# moved past (it would never apply those events again; issue 15's PostgreSQL-crash test lost 3
# so). Set when connecting: a `SET LOCAL` in every batch was a round trip, 4 % of the CPU of a
# batch of one event.
SESSION_SETTINGS = {"random_page_cost": "1.1", "synchronous_commit": "on"}

# A building generation's tables written to the WAL from the start, not made durable at the
# finish: the history tables, append-only and about 40 % of a replay's data. Their WAL is the
# same volume either way (150,000 events: 44 MB during the fill, against 44 MB more at the
# finish), but written during the fill it is off the finish's critical path: the finish 1.8 /
# 2.3 -> 1.5 / 1.5 s (one connection, alternating runs), the fill no slower within the noise.
LOGGED_WHILE_BUILDING = tuple(table.name for table in (*t.HISTORIES, t.requirement_flows))

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# How often the connection listening for commits is checked (a lost one is replaced), and the
# active generation looked up (a swap announced while it was lost is found then).
LISTEN_CHECK_SECONDS = 10.0


class Generation:
    """One generation's schema and the consumer (`spec`) that fills it."""

    def __init__(
        self,
        number: int,
        settings: ProjectionSettings,
        spec: ConsumerSpec,
        on_commit: Callable[[Generation, Sequence[Message]], None],
        *,
        building: bool = False,
    ) -> None:
        self.number = number
        self.migrate_on_start = settings.migrate_on_start
        # Filled by a rebuild: nobody reads it until the swap (see `prepare` and `finish`).
        self.building = building
        self.schema = f"{settings.projection_schema}_g{number}"
        self.db = Database(
            settings.database_url,
            self.schema,
            pool_size=5,
            server_settings=SESSION_SETTINGS,
        )
        self.store = EventStore(self.db)
        # How its rows are written, and (building) kept light until it answers.
        self.sink = sink_for(self.db)
        self.pulse = Pulse()
        self.consumer = EventConsumer(
            f"{settings.consumer_group_prefix}{spec.name}-g{number}",
            list(spec.topics),
            spec.handler,
            self.store,
            bootstrap_servers=KafkaConnection.from_settings(settings),
            topic_settings=TopicSettings.from_settings(settings),
            max_attempts=settings.consumer_max_attempts,
            batch_size=settings.projection_batch_size,
            stall_seconds=settings.consumer_stall_seconds,
            batch_handler=spec.batch_handler,
            on_commit=lambda messages: on_commit(self, messages),
            # A rebuild replays everything; only the first generation may attach at the end.
            start_at=settings.consumer_start_at if number == 1 else "earliest",
            # Every message applied has its audit row: that is its tracking record too.
            recorded_by_handler=t.audit.c.event_id,
            backoff=Backoff(cap=settings.kafka_retry_max_seconds),
            # A rebuild's helpers join the same group as members of their own (no instance id).
            group_instance_id=settings.kafka_group_instance_id,
        )
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        # The active generation's schema is migrated with the base one (`aidline migrate`, or
        # at start with MIGRATE_ON_START); a new one a rebuild fills is made here.
        if self.building or self.migrate_on_start:
            await upgrade_apart(self.db, MIGRATIONS)
        async with self.db.engine.begin() as conn:
            await seed_items(conn, self.sink)
            if self.building:
                await self.sink.build_lightly(conn, t.metadata, logged=LOGGED_WHILE_BUILDING)

    async def finish(self) -> None:
        """Make a building generation ready to answer: durable, every index built, while its
        consumer is paused. Fails if a database crash emptied it meanwhile (the rebuild is then
        abandoned)."""
        if not self.building:
            return
        async with self.consumer.paused():
            if not await self.intact():
                raise RuntimeError("the generation was emptied by a database crash")
            await self.sink.make_durable(t.metadata)
            async with self.db.engine.begin() as conn:
                if not await self.sink.intact(conn):  # a crash while it was made durable
                    raise RuntimeError("the generation was emptied by a database crash")
                await self.sink.built(conn)
        self.building = False

    async def intact(self) -> bool:
        """False once a database crash has emptied a building generation."""
        if not self.building:
            return True
        async with self.db.engine.connect() as conn:
            return await self.sink.intact(conn)

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


async def upgrade_active(database_url: str, base_schema: str) -> list[tuple[str, str | None]]:
    """`aidline migrate`'s step for the read models, after the base schema: the active
    generation's schema (the first one on a new database, which the service then takes)."""
    base = Database(database_url, base_schema, pool_size=2)
    try:
        async with base.engine.connect() as conn:
            number = await conn.scalar(
                sa.select(t.generations.c.number).where(t.generations.c.state == "active")
            )
    finally:
        await base.dispose()
    db = Database(database_url, f"{base_schema}_g{number or 1}", pool_size=2)
    try:
        await upgrade(db, MIGRATIONS)
        return [(db.schema, await current_revision(db))]
    finally:
        await db.dispose()


class ReadModels:
    """Runs the active generation; swaps in the one a rebuild has filled."""

    def __init__(self, settings: ProjectionSettings, base: Database, spec: ConsumerSpec) -> None:
        self.settings = settings
        self.base = base
        self.spec = spec
        self.active: Generation | None = None
        self.commits = Pulse()  # the active generation committed a batch
        # Told when the active generation changes, or commits (for the live stream).
        self.on_switch: list[Callable[[Generation, Generation | None], Any]] = []
        self.on_applied: list[Callable[[], None]] = []
        self.sink = sink_for(base)  # announces of other instances' commits (`follow_commits`)
        self._swapped = asyncio.Event()  # set (and replaced) when the active generation changes
        self._announced_swap = asyncio.Event()  # another instance swapped one in
        self._switching = asyncio.Lock()

    @property
    def _swaps(self) -> str:
        """What a swap is announced as (`ReadModelSink.commit_in_order`)."""
        return f"{self.base.schema}.generations"

    def building_lock(self, number: int) -> int:
        """Held by the instance building generation `number` (`Rebuilder`)."""
        return zlib.crc32(f"aidline.rebuild.{self.base.schema}.{number}".encode())

    def generation(self, number: int, *, building: bool = False) -> Generation:
        return Generation(number, self.settings, self.spec, self._committed, building=building)

    async def start(self) -> None:
        async with self.base.engine.begin() as conn:
            rows = (await conn.execute(sa.select(t.generations))).all()
        for row in rows:
            if row.state != "building":
                continue
            if await self.base.dialect.lock_held(self.base.engine, self.building_lock(row.number)):
                continue  # another instance is building it
            await self.abandon(row.number, "interrupted by a restart")  # its builder died
        active = next((r.number for r in rows if r.state == "active"), None)
        if active is None:
            active = 1
            # Another instance starting at the same moment may record it first: the same row.
            with contextlib.suppress(IntegrityError):
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
        generation = self.generation(active)
        await generation.prepare()
        self.active = generation
        await self._switched(generation, None)
        if self.settings.consumers_enabled:
            generation.start()

    async def stop(self) -> None:
        if self.active is not None:
            await self.active.stop()
            await self.active.db.dispose()

    @property
    def current(self) -> Generation:
        assert self.active is not None, "the read models have not started"
        return self.active

    async def follow_commits(self) -> None:
        """Wake read-your-writes and the live stream when ANY instance commits a batch to the
        active generation, not only this one: with several instances each applies some of the
        partitions (their waits would otherwise fall back on a slow poll). Take the generation
        another instance swapped in. Until cancelled; a lost connection raises (the caller
        restarts it)."""
        async with self.sink.listen(self._swaps, self._announced_swap.set) as swaps_alive:
            while True:
                generation, swapped = self.current, self._swapped

                def committed(generation: Generation = generation) -> None:
                    self._committed(generation, ())

                async with self.sink.listen(generation.schema, committed) as alive:
                    committed()  # what was committed before the listening began
                    while not swapped.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                self._announced_swap.wait(), LISTEN_CHECK_SECONDS
                            )
                        self._announced_swap.clear()
                        await alive()
                        await swaps_alive()
                        await self.follow_active()

    async def follow_active(self) -> None:
        """Take the generation the `generations` table says is active, if another instance
        swapped it in: its consumer joins that generation's group, the old one's stops."""
        async with self.base.engine.connect() as conn:
            number = await conn.scalar(
                sa.select(t.generations.c.number).where(t.generations.c.state == "active")
            )
        if number is None or number == self.current.number:
            return
        async with self._switching:
            old = self.current
            if number == old.number:
                return
            new = self.generation(number)
            await new.prepare()
            await self._activate(new, old)
            if self.settings.consumers_enabled:
                new.start()
            await old.stop()
            await old.db.dispose()
        log.info("projection generation %d taken over from another instance (was %d)",
                 number, old.number)  # fmt: skip

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

    async def swap(self, new: Generation) -> Generation:
        """Make `new` the active generation; returns the one it replaced, for the caller to
        drop once it has recorded the swap."""
        old = self.current
        async with self._switching:
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
                await self.sink.commit_in_order(conn, self._swaps)  # the others take it too
            await self._activate(new, old)
        log.info("projection generation %d swapped in (was %d)", new.number, old.number)
        return old

    async def _activate(self, new: Generation, old: Generation) -> None:
        self.active = new
        self._swapped.set()
        self._swapped = asyncio.Event()
        await self._switched(new, old)
        self.commits.fire()

    async def abandon(self, number: int, reason: str, generation: Generation | None = None) -> None:
        """Drop generation `number` and record it as failed."""
        log.warning("abandoning projection generation %d: %s", number, reason)
        generation = generation or self.generation(number)
        with contextlib.suppress(Exception):
            await generation.drop()
        async with self.base.engine.begin() as conn:
            await conn.execute(
                t.generations.update()
                .where(t.generations.c.number == number)
                .values(state="failed")
            )
