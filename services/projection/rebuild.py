"""A rebuild: a new generation of the read models filled from offset 0, swapped in once caught up.

`POST /admin/rebuild` reserves generation n+1 (a `building` row in the base schema's
`generations` table, committed with the command's idempotency record) and, once that has
committed, replays every topic into it while generation n keeps answering, until it has
reached the end offsets the topics had when the rebuild began. The generation is then made
durable (`Generation.finish`) and swapped in (`ReadModels.swap`).

On PostgreSQL helper processes share the replay: each runs the building generation's consumer
too (same group, same schema), Kafka splits the partitions between them, and every batch still
commits its read-model changes with its offsets and tracking records in one transaction. Row
loads lock their rows in key order, so two processes changing the same requirement wait for
each other instead of losing an update. On two cores a second process makes a replay about
1.4x faster; a third does not help (`PROJECTION_REBUILD_PROCESSES`).

`python -m services.projection.rebuild <generation>` runs one helper: it reads its settings
(one JSON line) from stdin and runs until stdin closes, so a helper never outlives the process
that started it, even one killed with -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiokafka import TopicPartition
from pydantic import SecretStr

from services.projection import tables as t
from services.projection.consumers import consumers
from services.projection.generations import Generation, ReadModels
from services.projection.pulse import wait
from services.projection.settings import ProjectionSettings
from shared.domain.errors import DomainError
from shared.eventstore import Transaction
from shared.messaging.kafka import Cluster, KafkaConnection, new_admin, new_consumer
from shared.observability.logs import configure_logging, resolve_format
from shared.runtime import run_loop, tune_gc
from shared.supervision import Backoff, TaskStatus, reraise_cancellation, retry

log = logging.getLogger(__name__)

# Between the swap and the old generation's drop: other instances switch over meanwhile.
DROP_GRACE_SECONDS = 1.0

# How often a reservation looks whether the command that made it has finished.


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


class Rebuilder:
    """Builds the next generation of `models` on request and has them swap it in."""

    def __init__(self, models: ReadModels) -> None:
        self.models = models
        self.settings = models.settings
        self.progress = RebuildProgress()
        self.building: Generation | None = None
        self._task: asyncio.Task[None] | None = None

    async def reserve(self, tx: Transaction) -> int:
        """Record a new generation as building in `tx`, and build it once `tx` has committed
        (if it rolls back, nothing starts). DomainError while a rebuild runs."""
        if self.building is not None or self.progress.state == "building":
            raise DomainError(
                f"Generation {self.progress.generation} is being built; watch GET /admin/status.",
                kind="rebuild-running",
                title="Rebuild already running",
            )
        conn = tx.conn
        # One reservation at a time across instances; one whose builder is alive refuses.
        await self.models.base.dialect.lock_transaction(conn, self.models.building_lock(0))
        building = await conn.scalars(
            sa.select(t.generations.c.number).where(t.generations.c.state == "building")
        )
        for other in building:
            if await self.models.base.dialect.lock_held(
                self.models.base.engine, self.models.building_lock(other)
            ):
                raise DomainError(
                    f"Generation {other} is being built by another instance.",
                    kind="rebuild-running",
                    title="Rebuild already running",
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
        before = self.progress
        self.progress = RebuildProgress(
            state="building", generation=number, started_at=datetime.now(UTC)
        )

        def ended(committed: bool) -> None:
            if committed:
                self._task = asyncio.create_task(self._run(number), name=f"rebuild-{number}")
            else:  # e.g. a raced Idempotency-Key: the reservation never happened
                self.progress = before

        tx.when_ended(ended)
        return number

    async def _run(self, number: int) -> None:
        # Held while it builds: another instance starting meanwhile leaves the generation be.
        base = self.models.base
        async with base.dialect.hold_lock(base.engine, self.models.building_lock(number)):
            await self._build(number)

    async def _build(self, number: int) -> None:
        generation = self.models.generation(number)
        self.building = generation
        try:
            await generation.db.drop_schema()  # leftovers of an earlier attempt
            generation = self.models.generation(number, building=True)
            self.building = generation
            await generation.prepare()
            targets = await self._targets(number)
            self.progress.total = sum(targets.values())
            generation.start()
            await self._replay(generation, targets)
            await generation.finish()
            old = await self.models.swap(generation)
            self.building = None
            self.progress.state, self.progress.finished_at = "swapped", datetime.now(UTC)
            # The other instances take the new generation when the swap is announced; their
            # queries on the old one end before its tables go (DROP waits for them), and what
            # they start after a short while goes to the new one.
            await asyncio.sleep(DROP_GRACE_SECONDS)
            await old.drop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reraise_cancellation()
            log.exception("rebuild of generation %d failed", number)
            self.progress.state, self.progress.error = "failed", repr(exc)
            self.progress.finished_at = datetime.now(UTC)
            self.building = None
            await self.models.abandon(number, repr(exc), generation)

    async def _targets(self, number: int) -> dict[TopicPartition, int]:
        """The topics' end offsets, waiting for the broker as long as it takes (the rebuild
        shows why it waits in `error`; its consumer waits for the broker the same way)."""
        status = TaskStatus(f"rebuild-{number}")
        cluster, topics = KafkaConnection.from_settings(self.settings), list(self.settings.topics)

        async def look() -> dict[TopicPartition, int]:
            try:
                return await end_offsets(cluster, topics)
            except Exception as exc:
                self.progress.error = (
                    f"waiting for Kafka ({type(exc).__name__}, attempt {status.attempts + 1})"
                )
                raise

        targets = await retry(status, look, Backoff(cap=self.settings.kafka_retry_max_seconds))
        self.progress.error = None
        return targets

    async def _replay(self, generation: Generation, targets: dict[TopicPartition, int]) -> None:
        """Until `generation` has reached `targets`, with helper processes on PostgreSQL; they
        have stopped when this returns, so that nothing writes to it while it is finished."""
        extra = (
            self.settings.projection_rebuild_processes - 1
            if self.models.base.dialect.shared_by_processes
            else 0
        )
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
        self.progress.applied = sum(min(stored.get(tp, 0), end) for tp, end in targets.items())
        return all(stored.get(tp, 0) >= end for tp, end in targets.items() if end > 0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.building is not None:
            await self.building.stop()
            await self.building.db.dispose()


async def end_offsets(cluster: Cluster, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of `topics` now: what a rebuild must reach."""
    admin = new_admin(cluster)
    await admin.start()
    try:
        # Every topic's metadata: asking for some by name would create those that are missing.
        described = {d["topic"]: d for d in await admin.describe_topics()}
    finally:
        await admin.close()
    partitions = []
    for topic in topics:
        numbers = [p["partition"] for p in described.get(topic, {}).get("partitions", [])]
        if not numbers:
            raise LookupError(f"topic {topic} has no partitions (does it exist?)")
        partitions += [TopicPartition(topic, p) for p in sorted(numbers)]
    consumer = new_consumer(cluster, enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


# -- helper processes (PostgreSQL) -----------------------------------------------------------

# What a helper needs to run a generation's consumer; nothing else is handed over. The Kafka
# credentials go in clear over the helper's stdin (never its arguments or environment).
_SECRETS = ("kafka_ssl_key_password", "kafka_sasl_password")
_HANDED_OVER = (
    "database_url",
    "kafka_bootstrap_servers",
    "kafka_retry_max_seconds",
    "kafka_topic_partitions",
    "kafka_dlq_partitions",
    "kafka_replication_factor",
    "kafka_min_insync_replicas",
    "kafka_security_protocol",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_client_id",
    *_SECRETS,
    "projection_schema",
    "consumer_group_prefix",
    "requests_topic",
    "allocations_topic",
    "deliveries_topic",
    "projection_batch_size",
    "consumer_max_attempts",
    "consumer_stall_seconds",
    "log_level",
    "log_format",
    "environment",
)
STOP_SECONDS = 15.0


class ReplayHelpers:
    """`count` helper processes replaying into generation `number` while the caller's own
    consumer does the same."""

    def __init__(self, settings: ProjectionSettings, number: int, count: int) -> None:
        self.settings, self.number, self.count = settings, number, count
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        fields = self.settings.model_dump(include=set(_HANDED_OVER))
        for name in _SECRETS:
            secret = getattr(self.settings, name)
            fields[name] = None if secret is None else secret.get_secret_value()
        handed_over = json.dumps(fields, default=str).encode()
        for _ in range(self.count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.projection.rebuild",
                str(self.number),
                stdin=asyncio.subprocess.PIPE,
            )
            assert process.stdin is not None
            process.stdin.write(handed_over + b"\n")
            await process.stdin.drain()
            self.processes.append(process)
        if self.count:
            log.info("rebuild of generation %d: %d helper process(es)", self.number, self.count)

    @property
    def running(self) -> int:
        return sum(process.returncode is None for process in self.processes)

    async def stop(self) -> None:
        """Close their stdin (they stop after the batch in hand) and wait; kill what hangs."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.processes.clear()


async def _serve(number: int, stdin: asyncio.StreamReader, settings: ProjectionSettings) -> None:
    (spec,) = consumers(settings)
    generation = Generation(number, settings, spec, lambda *_: None, building=True)
    generation.start()
    try:
        await stdin.read()  # until the parent closes it, or dies
    finally:
        await generation.stop()
        await generation.db.dispose()


async def _main(number: int) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    fields: dict[str, Any] = json.loads(await stdin.readline())
    secrets = {name: SecretStr(fields[name]) for name in _SECRETS if fields.get(name)}
    settings = ProjectionSettings.model_construct(**(fields | secrets))
    configure_logging(
        service="projection-replay",
        level=settings.log_level,
        log_format=resolve_format(settings.log_format, settings.environment),
    )
    tune_gc()
    await _serve(number, stdin, settings)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(int(sys.argv[1])))
