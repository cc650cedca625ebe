"""What a service runs besides its routes: database, event store, relay, consumers.

Every service builds one `ServiceRuntime`; the web app starts and stops it in its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient

from shared.db import Database
from shared.db.migrate import upgrade
from shared.eventstore import EventStore
from shared.messaging.consumer import BatchHandler, EventConsumer, Handler
from shared.messaging.relay import Relay
from shared.messaging.topics import EVENT_TOPICS, ensure_topics
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

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
        self.db = Database(settings.database_url, schema)
        self.store = EventStore(self.db)
        bootstrap = settings.kafka_bootstrap_servers
        self.relay = (
            Relay(
                self.store,
                topic=topic,
                source=source,
                bootstrap_servers=bootstrap,
                batch_size=settings.relay_batch_size,
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
            )
            for spec in consumers
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._kafka: AIOKafkaClient | None = None

    async def start(self) -> None:
        tune_gc()
        if self.settings.migrate_on_start:
            await upgrade(self.db, self.migrations)
        consuming = self.settings.consumers_enabled and bool(self.consumers)
        if self.relay is not None or consuming:  # a service cut off from Kafka needs no topics
            await ensure_topics(self.settings.kafka_bootstrap_servers, EVENT_TOPICS)
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="relay"))
        if self.settings.consumers_enabled:
            for consumer in self.consumers:
                self._tasks.append(asyncio.create_task(consumer.run(), name=consumer.name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._kafka is not None:
            await self._kafka.close()
        await self.db.dispose()

    async def readiness(self) -> dict[str, Any]:
        """Database, Kafka and consumer liveness, each with a reason when it fails.

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
            checks["relay"] = {
                "ok": True,
                "leader": self.relay.is_leader,
                "position": self.relay.position,
                "last_error": self.relay.last_error,
            }
        for consumer in self.consumers if self.settings.consumers_enabled else []:
            health = consumer.health()
            checks[f"consumer:{consumer.name}"] = {
                "ok": health.ok,
                "lag": health.lag,
                "applied": health.applied,
                "dead_lettered": health.dead_lettered,
                "problems": health.problems,
            }
        return checks

    async def _kafka_ping(self) -> None:
        if self._kafka is None:
            self._kafka = AIOKafkaClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
            await self._kafka.bootstrap()
        await self._kafka.fetch_all_metadata()
