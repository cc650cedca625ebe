"""What a service runs besides its routes: database, event store, relay, consumers.

Every service builds one `ServiceRuntime`; the web app starts and stops it in its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaClient

from shared.db import Database
from shared.db.migrate import upgrade_apart
from shared.eventstore import EventStore
from shared.messaging.consumer import BatchHandler, EventConsumer, Handler
from shared.messaging.envelope import kafka_limit
from shared.messaging.kafka import KafkaConnection, new_client
from shared.messaging.relay import Relay
from shared.messaging.topics import TopicSettings, ensure_topics
from shared.settings import ServiceSettings
from shared.supervision import Backoff, TaskStatus, retry, supervise

log = logging.getLogger(__name__)

# How long stopping waits for the supervised tasks to end once cancelled.
STOP_TASK_SECONDS = 10.0

# Young-generation collections every 50,000 allocations instead of 700: a consumer's batch
# creates tens of thousands of short-lived objects, and with the default every batch paid for
# repeated scans (and for promoting objects that die a moment later). Measured on the
# projection's replay: a third less CPU per event.
GC_THRESHOLDS = (50_000, 20, 100)
_gc_tuned = False


def tune_gc() -> None:
    """Once per process, after start-up: move what exists (modules, settings, pools) out of
    the collector's sight for good (`gc.freeze`) and collect less often."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()  # no full collection first: it would delay the start by up to a second
    gc.set_threshold(*GC_THRESHOLDS)


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the event loop the services run on under uvicorn: uvloop where it
    is installed (a dependency wherever it runs), else asyncio's own. For processes started
    without uvicorn: a rebuild replayed 32,300-34,600 events/s with its helper and the
    benchmark on uvloop against 30,600-32,400 on asyncio's loop (docs/benchmarks.md, "Eleventh
    session")."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms uvloop does not support
        return asyncio.run(main)
    return uvloop.run(main)


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer of a service: its group name, the topics it reads and its handler — one
    message at a time (`handler`) or a whole poll at once (`batch_handler`) — and, if it acts on
    some of the topics' events only, their types (the others are passed over cheaply)."""

    name: str
    topics: Sequence[str]
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    event_types: Collection[str] | None = None


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        schema: str,
        migrations: Path,
        topic: str | None = None,
        source: str | None = None,
        consumers: Sequence[ConsumerSpec] = (),
    ) -> None:
        self.settings = settings
        self.migrations = migrations
        self.topic = topic
        self.db = Database(settings.database_url, schema, pool_size=settings.database_pool_size)
        # No event Kafka would refuse is ever stored (docs/operations.md, "Event size").
        self.store = EventStore(
            self.db, size_limit=kafka_limit(settings.kafka_max_message_bytes, source or "")
        )
        # One connection (addresses, TLS, SASL, client.id) for every Kafka client it runs.
        self.kafka = bootstrap = KafkaConnection.from_settings(settings)
        self.topic_settings = TopicSettings.from_settings(settings)
        self.backoff = Backoff(cap=settings.kafka_retry_max_seconds)
        self.relay = (
            Relay(
                self.store,
                topic=topic,
                source=source,
                bootstrap_servers=bootstrap,
                batch_size=settings.relay_batch_size,
                stall_seconds=settings.relay_stall_seconds,
                producer_options={"max_request_size": settings.kafka_max_message_bytes},
                backoff=Backoff(initial=1.0, cap=settings.kafka_retry_max_seconds),
            )
            if topic and source and settings.relay_enabled
            else None
        )
        self.consumers = [
            EventConsumer(
                settings.consumer_group_prefix + spec.name,
                spec.topics,
                spec.handler,
                self.store,
                batch_handler=spec.batch_handler,
                event_types=spec.event_types,
                start_at=settings.consumer_start_at,
                bootstrap_servers=bootstrap,
                max_attempts=settings.consumer_max_attempts,
                stall_seconds=settings.consumer_stall_seconds,
                backoff=self.backoff,
                topic_settings=self.topic_settings,
                group_instance_id=settings.kafka_group_instance_id,
            )
            for spec in consumers
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._kafka: AIOKafkaClient | None = None
        # Supervised tasks that have no check of their own (the relay's and each consumer's
        # state are in theirs): shown in /readyz as `task:<name>`.
        self.tasks: dict[str, TaskStatus] = {}
        self._topics_ready = asyncio.Event()

    async def start(self) -> None:
        """Migrate, then start everything that talks to Kafka in the background: the service
        answers (reads, and commands into its outbox) whether or not the broker is there."""
        tune_gc()
        if self.settings.migrate_on_start:
            await upgrade_apart(self.db, self.migrations)
        consuming = self.settings.consumers_enabled and bool(self.consumers)
        if self.relay is not None or consuming:  # a service cut off from Kafka needs no topics
            self.tasks["topics"] = TaskStatus("topics")
            self._tasks.append(asyncio.create_task(self._ensure_topics(), name="topics"))
        if self.relay is not None:
            self._tasks.append(
                asyncio.create_task(self._after_topics(self.relay.run), name="relay")
            )
        if self.settings.consumers_enabled:
            for consumer in self.consumers:
                self._tasks.append(
                    asyncio.create_task(self._after_topics(consumer.run), name=consumer.name)
                )

    def supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` for the service's lifetime, restarted with backoff if it fails."""
        status = self.tasks[name] = TaskStatus(name)

        async def running() -> None:
            status.running()  # it needs nothing to reach first: running once started
            await run()

        self._tasks.append(asyncio.create_task(supervise(status, running, self.backoff), name=name))

    async def _ensure_topics(self) -> None:
        status, specs = self.tasks["topics"], self.topic_settings.event_topics()
        await retry(status, lambda: ensure_topics(self.kafka, specs), self.backoff)
        status.done()
        self._topics_ready.set()

    async def _after_topics(self, run: Callable[[], Awaitable[None]]) -> None:
        # The broker never creates topics on its own: publishing or subscribing before they
        # exist would only fail (or wait for metadata) until they do.
        await self._topics_ready.wait()
        await run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that does not end on cancellation (stuck in a driver call) must
            # not keep the process from stopping; it is named instead.
            done, stuck = await asyncio.wait(self._tasks, timeout=STOP_TASK_SECONDS)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.debug("task %s ended with %r at stop", task.get_name(), task.exception())
            for task in stuck:
                log.error(
                    "stopping: task %s did not end within %g s of its cancellation; left behind",
                    task.get_name(),
                    STOP_TASK_SECONDS,
                )
        self._tasks.clear()
        if self._kafka is not None:
            await self._kafka.close()
        await self.db.dispose()

    async def readiness(self) -> dict[str, Any]:
        """Database, Kafka, the relay, each consumer and supervised task, each with a reason
        when it fails. Only the database decides whether the service is ready (`ESSENTIAL`);
        the rest, failing, makes it degraded.

        The probe is public, so a failure names only the kind of error; its text (addresses,
        user names) goes to the log."""
        checks: dict[str, Any] = {}
        for name, ping in (("database", self.db.ping), ("kafka", self._kafka_ping)):
            try:
                await asyncio.wait_for(ping(), 3)
                checks[name] = {"ok": True}
            except Exception as exc:
                log.warning("readiness: %s check failed: %r", name, exc)
                checks[name] = {"ok": False, "error": type(exc).__name__}
        if self.relay is not None:
            try:
                checks["relay"] = await asyncio.wait_for(self.relay.observe(), 3)
            except Exception as exc:  # the database check says why
                checks["relay"] = self.relay.status.as_dict() | {"ok": False}
                log.warning("readiness: the relay's outbox state is unknown: %r", exc)
        for consumer in self.consumers if self.settings.consumers_enabled else []:
            health = consumer.health()
            status = consumer.status
            checks[f"consumer:{consumer.name}"] = {
                "ok": health.ok and status.ok,
                "state": status.state,
                "attempts": status.attempts,
                "last_error": status.last_error,
                "lag": health.lag,
                "applied": health.applied,
                "dead_lettered": health.dead_lettered,
                "problems": health.problems,
            }
        for name, task in self.tasks.items():
            checks[f"task:{name}"] = task.as_dict()
        return checks

    async def refresh_metrics(self) -> None:
        """Before a scrape: the gauges read from the database (the relay's lag and the age of
        its oldest unpublished event), so they are true whatever the relay is doing."""
        if self.relay is not None:
            try:
                await asyncio.wait_for(self.relay.observe(), 3)
            except Exception as exc:  # a scrape still answers; /readyz says what is wrong
                log.warning("metrics: the relay's outbox state is unknown: %r", exc)

    async def _kafka_ping(self) -> None:
        if self._kafka is None:
            client = new_client(self.kafka)
            try:
                await client.bootstrap()
            except BaseException:
                # A client whose bootstrap failed never recovers: try a new one next time.
                with contextlib.suppress(Exception):
                    await client.close()
                raise
            self._kafka = client
        await self._kafka.fetch_all_metadata()


# What a service needs to do its job for callers; any other check failing makes it degraded
# (HTTP 200): with Kafka away a write service still takes commands into its outbox.
ESSENTIAL = frozenset({"database"})


def readiness_status(checks: dict[str, Any]) -> str:
    """ready | degraded | not ready, from the checks of `ServiceRuntime.readiness`."""
    if not all(checks.get(name, {}).get("ok", False) for name in ESSENTIAL):
        return "not ready"
    return "ready" if all(check.get("ok", False) for check in checks.values()) else "degraded"
