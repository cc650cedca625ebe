"""The relay: publishes the store's events, in position order, to the service's topic.

- At-least-once: the checkpoint is saved only after Kafka acknowledged the batch; after a crash
  the unacknowledged tail is published again with the same ce_id.
- One publisher per store: the event log's leadership (`EventLog.leadership`: on PostgreSQL a
  session advisory lock on a connection of its own; SQLite's one process is always the leader).
- Wake-up without busy polling: the log wakes the leader on other processes' appends, and the
  store's in-process event on its own; a slow poll is only a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.store import EventStore, OutboxRow
from shared.eventstore.tables import relay_checkpoints
from shared.messaging import envelope
from shared.messaging.kafka import new_producer
from shared.supervision import Backoff, TaskStatus, supervise

log = logging.getLogger(__name__)

PUBLISHED = Counter("aidline_relay_published_total", "Events published by the relay", ["topic"])
# How often a publishing relay saves its checkpoint (and how long an idle one waits to).
CHECKPOINT_SECONDS = 0.5

RELAY_LAG = Gauge("aidline_relay_lag_events", "Stored events not yet published", ["topic"])
RELAY_POSITION = Gauge("aidline_relay_position", "Last store position published", ["topic"])


@dataclass
class _InFlight:
    last_position: int
    count: int
    futures: list[asyncio.Future[Any]]


class Relay:
    def __init__(
        self,
        store: EventStore,
        *,
        topic: str,
        source: str,
        bootstrap_servers: str,
        name: str = "relay",
        batch_size: int = 2000,
        max_in_flight: int = 8,
        idle_poll_seconds: float = 2.0,
        election_retry_seconds: float = 1.0,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        producer_options: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.topic = topic
        self.source = source
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.idle_poll_seconds = idle_poll_seconds
        self.election_retry_seconds = election_retry_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.producer_options = producer_options or {}
        self.is_leader = False
        self.position = 0  # acknowledged by Kafka
        self._saved, self._saved_at = 0, 0.0  # the checkpoint in the database, and when
        # Failures back off from `election_retry_seconds` (a broker away for long is not
        # hammered), and the state is what /readyz reports.
        self.backoff = backoff or Backoff(initial=election_retry_seconds)
        self.status = TaskStatus(f"relay:{topic}")

    @property
    def last_error(self) -> str | None:
        return self.status.last_error

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: win leadership, publish, and start over after any failure."""
        await supervise(self.status, self._lead, self.backoff)

    async def _lead(self) -> None:
        if self.status.attempts == 0:  # waiting its turn is fine; after a failure it is not
            self.status.standby()  # until leadership: another copy may be the publisher
        try:
            leadership = self.store.log.leadership(
                self.name, self.election_retry_seconds, self.store.appended.set
            )
            async with leadership as leader_conn:
                self.is_leader = True
                log.info("relay %s is the publisher for %s", self.name, self.topic)
                await self._publish_until_failure(leader_conn)
        finally:
            self.is_leader = False

    async def _publish_until_failure(self, leader_conn: AsyncConnection | None) -> None:
        """Pipelined: the next batch is read and sent while earlier ones await their acks;
        checkpoints are still saved strictly in order, each after its batch is acknowledged."""
        producer = new_producer(self.bootstrap_servers, **self.producer_options)
        await producer.start()
        self.status.running()
        in_flight: deque[_InFlight] = deque()
        try:
            self.position = self._saved = await self._load_checkpoint()
            self._saved_at = 0.0
            sent_up_to = self.position
            while True:
                self.store.appended.clear()
                batch = await self._read_batch(leader_conn, sent_up_to)
                if batch:
                    in_flight.append(await self._send(producer, batch))
                    sent_up_to = batch[-1].position
                if in_flight and (len(in_flight) >= self.max_in_flight or not batch):
                    await self._acknowledge(leader_conn, in_flight.popleft())
                    continue
                if batch:
                    continue
                # Idle. (A lost leader connection shows at the next read, which runs on it.)
                saved = self.position == self._saved
                try:
                    await asyncio.wait_for(
                        self.store.appended.wait(),
                        self.idle_poll_seconds if saved else self.checkpoint_seconds,
                    )
                except TimeoutError:
                    await self._checkpoint(leader_conn, force=True)
        finally:
            for pending in in_flight:
                for future in pending.futures:
                    future.cancel()
            await producer.stop()

    @contextlib.asynccontextmanager
    async def _connection(
        self, leader_conn: AsyncConnection | None
    ) -> AsyncIterator[AsyncConnection]:
        """The leader's own connection where the log gives one: the relay never queues for the
        pool behind the service's requests. Else one from the pool."""
        if leader_conn is not None:
            yield leader_conn
            return
        async with self.store.db.engine.connect() as conn:
            yield conn

    async def _read_batch(self, leader_conn: AsyncConnection | None, after: int) -> list[OutboxRow]:
        async with self._connection(leader_conn) as conn:
            batch = await self.store.read_outbox(conn, after, self.batch_size)
            if len(batch) < self.batch_size:  # at the head: lag is what we have not acked
                head = batch[-1].position if batch else after
                RELAY_LAG.labels(self.topic).set(max(0, head - self.position))
        return batch

    async def _send(self, producer: Any, batch: list[OutboxRow]) -> _InFlight:
        futures = []
        for event in batch:
            key, value, headers = envelope.encode(event, self.source)
            futures.append(await producer.send(self.topic, value=value, key=key, headers=headers))
        return _InFlight(batch[-1].position, len(batch), futures)

    async def _acknowledge(self, leader_conn: AsyncConnection | None, pending: _InFlight) -> None:
        await asyncio.gather(*pending.futures)
        self.position = pending.last_position
        PUBLISHED.labels(self.topic).inc(pending.count)
        RELAY_POSITION.labels(self.topic).set(self.position)
        await self._checkpoint(leader_conn)

    async def _load_checkpoint(self) -> int:
        async with self.store.db.engine.begin() as conn:
            position = await conn.scalar(
                sa.select(relay_checkpoints.c.position).where(relay_checkpoints.c.name == self.name)
            )
            if position is None:
                await conn.execute(
                    relay_checkpoints.insert().values(
                        name=self.name, position=0, updated_at=datetime.now(UTC)
                    )
                )
                return 0
            return int(position)

    async def _checkpoint(
        self, leader_conn: AsyncConnection | None, *, force: bool = False
    ) -> None:
        """Save the acknowledged position: at most every `checkpoint_seconds` while publishing,
        and once idle. A checkpoint that falls behind only means events published again after
        a crash (the same ce_id; consumers drop the copies), never one skipped."""
        now = time.monotonic()
        if self.position == self._saved or (
            not force and now - self._saved_at < self.checkpoint_seconds
        ):
            return
        position = self.position
        await self.store.log.save_checkpoint(leader_conn, self.name, position, datetime.now(UTC))
        self._saved, self._saved_at = position, now
