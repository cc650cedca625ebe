"""The relay: publishes the store's events, in position order, to the service's topic.

- At-least-once: the checkpoint is saved only after Kafka acknowledged the batch; after a crash
  the unacknowledged tail is published again with the same ce_id.
- One publisher per store: the event log's leadership (`EventLog.leadership`: on PostgreSQL a
  session advisory lock on a connection of its own; SQLite's one process is always the leader).
- Wake-up without busy polling: the log wakes the leader on other processes' appends, and the
  store's in-process event on its own; the outbox is read only then, after a full batch, and
  on a slow poll that is only a safety net.
- An event the broker refuses for good (too large, invalid, not authorised) stops the relay at
  its position, loudly (`Refused`); anything else is retried with backoff. Lag and the age of
  the oldest unpublished event come from the database, whatever the relay's state.
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
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.store import EventStore, OutboxRow
from shared.eventstore.tables import relay_checkpoints
from shared.messaging import envelope
from shared.messaging.kafka import Cluster, new_producer
from shared.supervision import Backoff, TaskStatus, supervise

log = logging.getLogger(__name__)

PUBLISHED = Counter("aidline_relay_published_total", "Events published by the relay", ["topic"])
# Reads per event published tells a relay that reads only when there is news from one polling.
READS = Counter("aidline_relay_reads_total", "Outbox reads by the relay", ["topic"])
# How often a publishing relay saves its checkpoint (and how long an idle one waits to).
CHECKPOINT_SECONDS = 0.5
# The producer's partitioner (murmur2 of the key, as Kafka's Java clients), and the largest
# request it sends when the options name none (aiokafka's default, set explicitly: the relay
# refuses what the producer would by the same figure).
_PARTITIONER = DefaultPartitioner()
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
# A read of this many events or more goes out in record batches the relay fills; fewer, record
# by record through the producer's `send`, whose open record batch takes what arrives while a
# request is in flight (the relay's own would each wait for a round trip of their own).
RECORD_BATCHES_FROM = 64

RELAY_LAG = Gauge("aidline_relay_lag_events", "Stored events not yet published", ["topic"])
RELAY_OLDEST = Gauge(
    "aidline_relay_oldest_unpublished_seconds",
    "Age of the oldest stored event not yet published (0 when none waits)",
    ["topic"],
)
RELAY_POSITION = Gauge("aidline_relay_position", "Last store position published", ["topic"])
RELAY_STOPPED = Gauge(
    "aidline_relay_stopped", "1 while the relay is stopped at an event Kafka refuses", ["topic"]
)

# The broker (or the producer, before sending) refuses the record or the topic itself: sending
# it again can only fail again. Everything else (a broker away, a timeout, a leader moving) is
# retried; aiokafka's `retriable` flag cannot tell them apart (a delivery timeout is False).
REFUSALS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


class Refused(Exception):
    """Kafka refused `event`. `alone`: it was sent as a record batch of its own (or refused by
    the producer, which checks each record), so it is the one at fault; else the batch it was
    in (up to `sent_up_to`) is sent again one record at a time to find which."""

    def __init__(
        self, event: OutboxRow, error: BaseException, *, alone: bool, sent_up_to: int
    ) -> None:
        super().__init__(f"Kafka refused event {event.event_id} at position {event.position}")
        self.event = event
        self.error = error
        self.alone = alone
        self.sent_up_to = sent_up_to


@dataclass
class _InFlight:
    rows: list[OutboxRow]
    futures: list[asyncio.Future[Any]]
    refused: BaseException | None = None  # the producer refused the last row before sending it
    last: bool = False  # a row was refused: send nothing after these


class Relay:
    def __init__(
        self,
        store: EventStore,
        *,
        topic: str,
        source: str,
        bootstrap_servers: Cluster,
        name: str = "relay",
        batch_size: int = 2000,
        max_in_flight: int = 8,
        record_batches_from: int = RECORD_BATCHES_FROM,
        idle_poll_seconds: float = 2.0,
        election_retry_seconds: float = 1.0,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
        stall_seconds: float = 60.0,
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
        self.record_batches_from = record_batches_from
        self.idle_poll_seconds = idle_poll_seconds
        self.election_retry_seconds = election_retry_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.stall_seconds = stall_seconds
        self.producer_options = {"max_request_size": DEFAULT_MAX_REQUEST_SIZE} | (
            producer_options or {}
        )
        self.max_request_size: int = self.producer_options["max_request_size"]
        self.is_leader = False
        self.position = 0  # acknowledged by Kafka
        self._saved, self._saved_at = 0, 0.0  # the checkpoint in the database, and when
        # Failures back off from `election_retry_seconds` (a broker away for long is not
        # hammered), and the state is what /readyz reports.
        self.backoff = backoff or Backoff(initial=election_retry_seconds)
        self.status = TaskStatus(f"relay:{topic}")
        self.refused: Refused | None = None  # while stopped at an event Kafka refuses
        # Up to here, each event goes alone in its own record batch (after a refused batch).
        self._alone_until = 0
        RELAY_STOPPED.labels(topic).set(0)

    @property
    def last_error(self) -> str | None:
        return self.status.last_error

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled: win leadership, publish, and start over after any failure; stop
        at an event Kafka refuses until another copy has published it (a restart of this one
        tries it again)."""
        await supervise(self.status, self._lead_or_stop, self.backoff)

    async def _lead_or_stop(self) -> None:
        while True:
            try:
                await self._lead()
            except Refused as refused:
                if refused.alone:
                    await self._stopped(refused)
                    continue
                # A record batch holds several events and Kafka judges it whole (a topic's
                # max.message.bytes below the producer's batch size refuses small events
                # together): send them again one per batch to find the one at fault.
                self._alone_until = refused.sent_up_to
                log.warning("relay for %s: Kafka refused a record batch (%r); sending up to "
                            "position %d one event at a time", self.topic, refused.error,
                            refused.sent_up_to)  # fmt: skip

    async def _stopped(self, refused: Refused) -> None:
        """Stopped: not ok in /readyz, counted, logged; the leadership is given up, so every
        copy tries the event once and reports it. Ends when the checkpoint has passed it."""
        event, error = refused.event, refused.error
        self.refused = refused
        self.status.stopped(error)
        RELAY_STOPPED.labels(self.topic).set(1)
        log.error(
            "relay for %s stopped at position %d: Kafka refused event %s (%s, stream %s): %r. "
            "Nothing after it is published until it is; fix the cause (e.g. raise the topic's "
            "max.message.bytes), then restart the service: the relay tries it again.",
            self.topic, event.position, event.event_id, event.event_type, event.stream_id, error,
            extra={"position": event.position, "event_id": str(event.event_id),
                   "event_type": event.event_type, "error": type(error).__name__},
        )  # fmt: skip
        try:
            while await self._load_checkpoint() < event.position:
                await asyncio.sleep(self.idle_poll_seconds)
        finally:
            self.refused = None
            RELAY_STOPPED.labels(self.topic).set(0)
        log.info("relay for %s: position %d was published by another copy", self.topic,
                 event.position)  # fmt: skip
        self.status.standby()

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
            refused = False  # one was refused: send nothing after it
            # Read the outbox only when there can be something new: at the start, after an
            # append was announced (the store in-process, the log for other processes), after a
            # full batch, and on the idle poll (the safety net). Reading after every
            # acknowledgement as well made about 3 reads per event when each is read alone; 1 now.
            more = True
            while True:
                batch: list[OutboxRow] = []
                if not refused and (more or self.store.appended.is_set()):
                    self.store.appended.clear()  # before the read: a later append sets it again
                    batch = await self._read_batch(leader_conn, sent_up_to)
                    more = len(batch) >= self.batch_size
                if batch:
                    pending = await self._send(producer, batch)
                    in_flight.append(pending)
                    sent_up_to, refused = pending.rows[-1].position, pending.last
                if in_flight and (len(in_flight) >= self.max_in_flight or not batch):
                    await self._acknowledge(leader_conn, in_flight.popleft(), sent_up_to)
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
                    # The safety net: an append nobody announced (rows written by hand, a
                    # notification lost with a connection) waits at most `idle_poll_seconds`.
                    more = True
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
        READS.labels(self.topic).inc()
        async with self._connection(leader_conn) as conn:
            return await self.store.read_outbox(conn, after, self.batch_size)

    async def _send(self, producer: Any, batch: list[OutboxRow]) -> _InFlight:
        """A backlog in record batches of the relay's own; a few events (the live path) record
        by record (`RECORD_BATCHES_FROM`)."""
        if len(batch) >= self.record_batches_from:
            return await self._send_record_batches(producer, batch)
        futures: list[asyncio.Future[Any]] = []
        for index, event in enumerate(batch):
            key, value, headers = envelope.encode(event, self.source)
            try:
                sent = await producer.send(self.topic, value=value, key=key, headers=headers)
            except REFUSALS as exc:  # e.g. larger than the producer's max_request_size
                return _InFlight(batch[: index + 1], futures, refused=exc, last=True)
            futures.append(sent)
            if event.position <= self._alone_until:  # its own record batch: wait for it
                await asyncio.wait([sent])
                if not sent.cancelled() and isinstance(sent.exception(), REFUSALS):
                    return _InFlight(batch[: index + 1], futures, last=True)
        return _InFlight(batch, futures)

    async def _send_record_batches(self, producer: Any, batch: list[OutboxRow]) -> _InFlight:
        """Each event into a record batch of its partition's, filled here and handed to the
        producer whole (`send_batch`), each partition's in the order of the events: per event
        about half the CPU of the producer's `send` for each record (batches of 2,000: 9.6-9.9
        against 18.5-20.3 µs; docs/benchmarks.md "Ninth session"). The partition is the one
        `send` would choose (its partitioner, on the key). An event larger than the producer
        may send is refused here, as `send` refuses it; one to be sent alone is waited for."""
        partitions = sorted(await producer.partitions_for(self.topic))
        filling: dict[int, Any] = {}  # partition -> the record batch being filled
        record_batch_of: list[Any] = []  # each event's
        future_of: dict[int, asyncio.Future[Any]] = {}  # id(record batch) -> once handed over

        async def hand_over(partition: int) -> None:
            record_batch = filling.pop(partition)
            future_of[id(record_batch)] = await producer.send_batch(
                record_batch, self.topic, partition=partition
            )

        async def hand_over_all() -> None:
            for partition in list(filling):
                await hand_over(partition)

        def in_flight(
            events: int, *, refused: BaseException | None = None, last: bool = True
        ) -> _InFlight:
            futures = [future_of[id(b)] for b in record_batch_of]
            return _InFlight(batch[:events], futures, refused=refused, last=last)

        for index, event in enumerate(batch):
            key, value, headers = envelope.encode(event, self.source)
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > self.max_request_size:
                await hand_over_all()
                refused = MessageSizeTooLargeError(
                    f"The message is {size} bytes when serialized, more than max_request_size "
                    f"({self.max_request_size})"
                )
                return in_flight(index + 1, refused=refused)
            alone = event.position <= self._alone_until
            if alone:  # in a record batch of its own, after everything before it
                await hand_over_all()
            partition = _PARTITIONER(key, partitions, partitions)
            record_batch = filling.get(partition)
            appended = record_batch is not None and record_batch.append(
                key=key, value=value, timestamp=None, headers=headers
            )
            if not appended:  # the partition's first, or its record batch is full
                if record_batch is not None:
                    await hand_over(partition)
                record_batch = filling[partition] = producer.create_batch()
                # An empty record batch takes any record.
                record_batch.append(key=key, value=value, timestamp=None, headers=headers)
            record_batch_of.append(record_batch)
            if alone:
                await hand_over(partition)
                sent = future_of[id(record_batch)]
                await asyncio.wait([sent])
                if not sent.cancelled() and isinstance(sent.exception(), REFUSALS):
                    return in_flight(index + 1)
        await hand_over_all()
        return in_flight(len(batch), last=False)

    async def _acknowledge(
        self, leader_conn: AsyncConnection | None, pending: _InFlight, sent_up_to: int
    ) -> None:
        """Move the position over what Kafka acknowledged, in order, up to the first failure:
        an event refused for good raises `Refused`, any other failure itself (retried)."""
        outcomes: list[Any] = await asyncio.gather(*pending.futures, return_exceptions=True)
        if pending.refused is not None:
            outcomes.append(pending.refused)
        failed = next((i for i, o in enumerate(outcomes) if isinstance(o, BaseException)), None)
        acknowledged = pending.rows[:failed]
        if acknowledged:
            self.position = acknowledged[-1].position
            PUBLISHED.labels(self.topic).inc(len(acknowledged))
            RELAY_POSITION.labels(self.topic).set(self.position)
        if failed is None:
            await self._checkpoint(leader_conn)
            return
        await self._checkpoint(leader_conn, force=True)
        error, event = outcomes[failed], pending.rows[failed]
        if isinstance(error, REFUSALS):
            alone = event.position <= self._alone_until or error is pending.refused
            raise Refused(event, error, alone=alone, sent_up_to=sent_up_to)
        if not isinstance(error, Exception):  # a cancelled send must not end the task silently
            raise RuntimeError(f"sending event {event.event_id} failed: {error!r}")
        raise error

    # -- health ----------------------------------------------------------------------------

    async def observe(self) -> dict[str, Any]:
        """The relay's real state for /readyz and the metrics, read from the database (so a
        relay retrying, stopped or on standby reports it as truthfully as the publisher):
        `lag` events stored and not published, the age of the oldest of them, and where it
        stopped if it did. Not ok unless running or standby with nothing waiting longer than
        `stall_seconds`."""
        async with self.store.db.engine.connect() as conn:
            published, head, oldest = await self.store.log.outbox_state(
                conn, self.name, self.position
            )
        lag = max(0, head - published)
        age = max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0
        RELAY_LAG.labels(self.topic).set(lag)
        RELAY_OLDEST.labels(self.topic).set(age)
        refused = self.refused
        return self.status.as_dict() | {
            "ok": self.status.ok and age <= self.stall_seconds,
            "leader": self.is_leader,
            "position": published,
            "lag": lag,
            "oldest_unpublished_seconds": round(age, 3),
            "stopped_at": None
            if refused is None
            else {
                "position": refused.event.position,
                "event_id": str(refused.event.event_id),
                "event_type": refused.event.event_type,
                "stream_id": refused.event.stream_id,
                "error": type(refused.error).__name__,
            },
        }

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
