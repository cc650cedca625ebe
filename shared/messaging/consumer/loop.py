"""The consumer loop every service uses to apply other services' events: the Kafka client's
lifecycle, the poll loop, the rebalance listener and what is counted. Applying a poll exactly
once is `applying.Applier`'s; the tracking record is `shared.messaging.tracking`'s; the dead
letters `deadletter.DeadLetters`', and their replay `redrive.Redrive`'s; liveness
`health.Liveness`'.

On assignment the consumer seeks to the offsets stored in its own database, so the database,
not Kafka's committed offsets, is the truth. Kafka offsets are committed afterwards only so that
tools show sensible lag.

Errors of the database itself (connection lost, shutting down, read-only, disk full, timed out,
busy: `failures.not_the_message`) are not the message's fault: the whole batch is rolled back
and applied again after a pause, however often, and never dead-lettered. Nor are a deadlock or
serialization failure, or (once) a unique key another writer of the same tables took meanwhile —
consumers sharing tables (a rebuild's helper processes) meet such conflicts: the batch is
retried whole, and sees the other's rows.

Every pause between attempts is slept, and every dead letter published, with no transaction
open: inside one, a batch that has appended events holds the store's commit-order lock, and
every command of the service would wait for the sleep or the Kafka round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from prometheus_client import Counter, Gauge

from shared.eventstore.store import EventStore, Transaction
from shared.messaging.consumer.applying import Applier, Records
from shared.messaging.consumer.deadletter import DeadLetters
from shared.messaging.consumer.failures import (
    RetryBatch,
    RetryMessages,
    is_concurrency_failure,
    is_infrastructure_failure,
)
from shared.messaging.consumer.health import ConsumerHealth, Liveness
from shared.messaging.consumer.message import BatchHandler, CommitListener, Handler, Message
from shared.messaging.consumer.redrive import Redrive, Replay
from shared.messaging.kafka import Cluster, new_consumer
from shared.messaging.topics import TopicSettings, ensure_topics
from shared.messaging.tracking import tracker_for
from shared.observability.context import bound
from shared.supervision import Backoff, TaskStatus, reraise_cancellation, supervise

log = logging.getLogger(__name__)

APPLIED = Counter("aidline_consumer_applied_total", "Events applied", ["consumer", "topic"])
POSITION = Gauge(
    "aidline_consumer_position",
    "Next offset to apply (everything before it is applied)",
    ["consumer", "topic", "partition"],
)
LAST_EVENT_TIME = Gauge(
    "aidline_consumer_last_event_timestamp_seconds",
    "ce_time of the last event applied: how fresh the consumer's effects are",
    ["consumer"],
)

# Kafka's own committed offsets only feed monitoring tools; they are sent at most this often.
ADVISORY_COMMIT_SECONDS = 1.0
# How long the broker may hold a fetch for partitions that have nothing new. The client keeps one
# fetch in flight per broker and sends none for partitions whose records it still holds, so while
# a long fetch for caught-up partitions waits, a partition with a backlog waits with it: a replay
# of three topics ran at 23k events/s with Kafka's 500 ms, 30k with 100 ms.
FETCH_MAX_WAIT_MS = 100


# How long a Kafka client that is being replaced (or the service stopping) has to stop.
CLIENT_STOP_SECONDS = 10.0


class ClientStarved(Exception):
    """The Kafka client delivered nothing for the stall time while messages were waiting."""


class EventConsumer:
    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        handler: Handler | None,
        store: EventStore,
        *,
        bootstrap_servers: Cluster,
        max_attempts: int = 3,
        batch_size: int = 500,
        stall_seconds: float = 60.0,
        retry_backoff_seconds: float = 0.05,
        batch_handler: BatchHandler | None = None,
        on_commit: CommitListener | None = None,
        start_at: Literal["earliest", "latest"] = "earliest",
        recorded_by_handler: sa.Column[uuid.UUID] | None = None,
        event_types: Collection[str] | None = None,
        backoff: Backoff | None = None,
        topic_settings: TopicSettings | None = None,
        group_instance_id: str | None = None,
    ) -> None:
        """`bootstrap_servers`: the cluster (a `KafkaConnection`, or its addresses for
        plaintext); `recorded_by_handler`: the batch handler's own record of the events it
        applies (`shared.messaging.tracking`); `event_types`: the types it acts on (None: all);
        `topic_settings`: what its dead-letter topics are created with; `group_instance_id`:
        static membership of its group (`ServiceSettings.kafka_group_instance_id`)."""
        if (handler is None) == (batch_handler is None):
            raise ValueError("give either a handler or a batch_handler")
        self.name = name
        self.topics = list(topics)
        self.handler = handler
        self.on_commit = on_commit
        # Where a partition this consumer has never applied starts: the beginning (a service
        # must see everything) or, to attach to live traffic only, the current end.
        self.start_at = start_at
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.topic_settings = topic_settings or TopicSettings()
        self.batch_size = batch_size
        self.group_instance_id = group_instance_id
        self.retry_backoff_seconds = retry_backoff_seconds
        self.tracker = tracker_for(store.db, name, recorded_by_handler)
        self.dead_letters = DeadLetters(name, store.db)
        self.applier = Applier(
            name,
            store,
            self.tracker,
            batch_handler or self._one_by_one,
            self.dead_letters,
            event_types=event_types,
            max_attempts=max_attempts,
            retry_backoff_seconds=retry_backoff_seconds,
        )
        # Held while a batch's transaction runs: a rebalance waits for it, so the offsets it
        # reads and seeks to include that batch; so does a dead letter's replay.
        self._applying = asyncio.Lock()
        self.redrive = Redrive(
            name,
            store,
            self.tracker,
            self.applier.handler,
            self._applying,
            backoff_seconds=retry_backoff_seconds,
        )
        self.liveness = Liveness(name, stall_seconds)
        self.applied = 0
        self.dead_lettered = 0
        self.last_event_time: datetime | None = None
        self._advisory: dict[TopicPartition, int] = {}
        self._advised_at = 0.0
        self.assigned = asyncio.Event()
        self.backoff = backoff or Backoff()
        self.status = TaskStatus(f"consumer:{name}")
        self._topics_ensured = False

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled; restart the Kafka client after any unexpected failure,
        backing off while the broker is away (the dead-letter topics are created on the first
        attempt that reaches it)."""
        await supervise(self.status, self._run_once, self.backoff)

    async def _run_once(self) -> None:
        if not self._topics_ensured:
            await ensure_topics(
                self.bootstrap_servers,
                self.topic_settings.dead_letter_topics(self.topics, self.name),
            )
            self._topics_ensured = True
        await self._consume()

    async def _consume(self) -> None:
        consumer = new_consumer(
            self.bootstrap_servers,
            group_id=self.name,
            group_instance_id=self.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            # Members share every topic's partitions evenly (the default, range, gives the
            # first member two of each topic's three).
            partition_assignment_strategy=(RoundRobinPartitionAssignor,),
            # A member joining (a rebuild's helper, a restarted copy) is noticed within a second.
            heartbeat_interval_ms=1000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        try:  # inside: a start that fails with the broker away still closes both clients
            await self.dead_letters.start(self.bootstrap_servers)
            await consumer.start()
            consumer.subscribe(self.topics, listener=_SeekToStoredOffsets(self, consumer))
            self.liveness.running = True
            self.status.running()
            while True:
                # Held dead letters not published yet: at start (a process that died after its
                # commit left them), and after a failed attempt.
                await self._send_dead_letters()
                batches = await consumer.getmany(timeout_ms=1000, max_records=self.batch_size)
                self.liveness.polled()
                if batches:
                    await self._apply(consumer, batches)
                self.liveness.measure(consumer, self.applier.next_offsets)
                if self.liveness.starved(delivered=bool(batches)):
                    raise ClientStarved(
                        f"the Kafka client delivered nothing for {self.liveness.stall_seconds:g}"
                        f" s while {sum(self.liveness.lag.values())} messages were behind"
                    )
        finally:
            self.liveness.running = False
            self.liveness.restarted()
            with contextlib.suppress(Exception):
                try:
                    # Bounded: aiokafka's stop waits for its coordinator's task, which a wedged
                    # client may never end (aio-libs/aiokafka#773); the next must start anyway.
                    async with asyncio.timeout(CLIENT_STOP_SECONDS):
                        await consumer.stop()
                except TimeoutError:
                    log.warning("consumer %s: its Kafka client did not stop within %g s; left "
                                "behind", self.name, CLIENT_STOP_SECONDS)  # fmt: skip
            with contextlib.suppress(Exception):
                await self.dead_letters.stop()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No batch is applied while inside (one in flight commits first): for work on the
        consumer's tables that must not interleave with its transactions."""
        async with self._applying:
            yield

    # -- applying --------------------------------------------------------------------------

    async def _one_by_one(self, tx: Transaction, messages: Sequence[Message]) -> None:
        assert self.handler is not None
        for message in messages:
            # Its logs, and the events it causes, carry the command's correlation id onward.
            event_id = str(message.event.event_id)
            with bound(message.event.meta.correlation_id or event_id, event_id):
                await self.handler(tx, message)

    async def _apply(self, consumer: AIOKafkaConsumer, batches: Records) -> None:
        attempt = 1
        while True:
            try:
                async with self._applying:
                    applied, dead = await self.applier.apply(batches, attempt)
                break
            except RetryMessages as exc:
                await asyncio.sleep(exc.delay)
            except Exception as exc:
                reraise_cancellation()
                if is_infrastructure_failure(exc, self.store.db.dialect):
                    log.warning("consumer %s: database unavailable, applying the batch again "
                                "(attempt %d): %r", self.name, attempt + 1,
                                exc.__cause__ or exc)  # fmt: skip
                    await asyncio.sleep(min(1.0, self.retry_backoff_seconds * 2**attempt))
                elif isinstance(exc, RetryBatch) or is_concurrency_failure(exc):
                    level = logging.INFO if attempt < 5 else logging.WARNING
                    log.log(level, "consumer %s: applying the batch again (attempt %d) after %r",
                            self.name, attempt + 1, exc.__cause__ or exc)  # fmt: skip
                    await asyncio.sleep(self.retry_backoff_seconds * min(attempt, 10))
                else:
                    raise
            attempt += 1
        if dead:
            await self._send_dead_letters()
        self._count(batches, applied, dead)
        self._advisory.update({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
        if time.monotonic() - self._advised_at >= ADVISORY_COMMIT_SECONDS:
            # Advisory only (our database holds the truth): a round trip per second, not per poll.
            with contextlib.suppress(Exception):
                await consumer.commit(self._advisory)
            self._advised_at = time.monotonic()

    async def _send_dead_letters(self) -> None:
        """Publish the held dead letters, outside any transaction and the rebalance lock: a slow
        broker holds nothing up but this loop. A failure leaves them held for the next try."""
        try:
            await self.dead_letters.send()
        except Exception as exc:
            log.warning("consumer %s: dead letters not published yet: %r", self.name, exc)

    def _count(self, batches: Records, applied: list[Message], dead: int) -> None:
        self.applied += len(applied)
        self.dead_lettered += dead
        for tp, records in batches.items():
            POSITION.labels(self.name, tp.topic, str(tp.partition)).set(records[-1].offset + 1)
        per_topic: dict[str, int] = {}
        for message in applied:
            per_topic[message.topic] = per_topic.get(message.topic, 0) + 1
        for topic, count in per_topic.items():
            APPLIED.labels(self.name, topic).inc(count)
        if applied:
            self.last_event_time = applied[-1].event.time
            LAST_EVENT_TIME.labels(self.name).set(self.last_event_time.timestamp())
            self._tell(applied)

    def _tell(self, applied: Sequence[Message]) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(applied)
            except Exception:  # a listener's bug must not stop the consumer
                log.exception("consumer %s: commit listener failed", self.name)

    # -- dead letters ------------------------------------------------------------------------

    async def replay(self, letter: uuid.UUID, actor: str) -> Replay | None:
        """Replay one of this consumer's dead letters through its handler, exactly once in
        effect (`redrive`); None if it has no such letter."""
        replay = await self.redrive.replay(letter, actor)
        if replay is not None and replay.message is not None:
            self.applied += 1
            APPLIED.labels(self.name, replay.message.topic).inc()
            self._tell([replay.message])  # freshness (last_event_time) is not an old event's
        return replay

    # -- the tracking record ----------------------------------------------------------------

    async def processed(self, event_id: uuid.UUID) -> bool:
        """Whether this consumer has applied (or dead-lettered) `event_id`."""
        async with self.store.db.engine.connect() as conn:
            return bool(await self.tracker.applied(conn, {event_id}))

    async def stored_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self.tracker.stored_offsets(partitions)

    # -- liveness --------------------------------------------------------------------------

    @property
    def lag(self) -> dict[TopicPartition, int]:
        return dict(self.liveness.lag)

    def health(self) -> ConsumerHealth:
        return self.liveness.health(
            assigned=self.assigned.is_set(),
            applied=self.applied,
            dead_lettered=self.dead_lettered,
        )

    # -- rebalancing -----------------------------------------------------------------------

    async def revoke(self, partitions: Collection[TopicPartition]) -> None:
        async with self._applying:  # let the batch in flight commit first
            self.applier.forget(partitions)
            self.liveness.forget(partitions)

    async def assign(
        self, consumer: AIOKafkaConsumer, partitions: Collection[TopicPartition]
    ) -> None:
        """Seek every assigned partition to the offset stored in the database."""
        async with self._applying:  # no batch commits between reading and seeking
            stored = await self.tracker.stored_offsets(list(partitions))
            new = [tp for tp in partitions if tp not in stored]
            if new and self.start_at == "latest":
                # Remember the start at once: a restart before the first message must not
                # move it on past what arrived meanwhile.
                ends = await consumer.end_offsets(new)
                async with self.store.db.engine.begin() as conn:
                    await self.tracker.save_offsets(conn, ends)
                stored |= ends
            starts = {}
            for tp in partitions:
                if tp in stored:
                    consumer.seek(tp, stored[tp])
                elif await consumer.seek_to_beginning(tp):  # reset: its position is its start
                    # Not 0 where retention moved it: the lag (and a starved client) counts
                    # from here.
                    starts[tp] = await consumer.position(tp)
            self.applier.resume(stored | starts)
        log.info("consumer %s assigned %s (stored offsets: %s)", self.name, sorted(partitions),
                 stored)  # fmt: skip
        self.assigned.set()


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer, consumer: AIOKafkaConsumer) -> None:
        self.owner = owner
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.assign(self.consumer, assigned)
