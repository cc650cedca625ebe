"""The consumer loop every service uses to apply other services' events.

Exactly-once effect: the messages of one poll (from one or more partitions) are applied in one
database transaction together with (a) the ids of the events applied and (b) each partition's
next offset.
On assignment the consumer seeks to the offsets stored in its own database, so the database,
not Kafka's committed offsets, is the truth; a redelivered or re-published event (same ce_id)
is skipped. Kafka offsets are committed afterwards only so that tools show sensible lag.

Speed: the whole batch is first applied in one savepoint (one handler call per message, or one
call of a batch handler for all of them) and its tracking records are written in one statement.
Only when that fails is the batch applied again message by message.

A batch handler that itself keeps one row per event it applies (an audit trail, with the event
id in a unique column, written in the batch's transaction) can name that column as
`recorded_by_handler`: the consumer then takes it as its record of applied events and writes
tracking rows of its own only for the messages the handler did not apply (dead-lettered ones),
one row per event instead of two. Nor does it look a batch's events up in that record first: the
unique column refuses a second application (the savepoint then rolls back every effect of the
batch), and a batch that fails is looked up and applied again.

Poison messages: in that per-message pass each message runs in its own savepoint; one that fails
`max_attempts` times (or is not a well-formed CloudEvent) is published to `<topic>.dlq.<consumer>`
with the error in headers, recorded as processed, counted, and the batch goes on. Errors of the
database connection itself are not the message's fault: the whole batch is rolled back and
retried. Nor are a deadlock or serialization failure, or (once) a unique key another writer of
the same tables took meanwhile — consumers sharing tables (a rebuild's helper processes) meet
such conflicts: the batch is retried whole, and sees the other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.bulk import driver_connection, insert_rows
from shared.domain.events import Metadata
from shared.eventstore.store import EventStore, Transaction
from shared.eventstore.tables import consumer_offsets, processed_events
from shared.messaging import envelope
from shared.messaging.envelope import Envelope, EnvelopeError, frozen
from shared.messaging.kafka import new_producer
from shared.messaging.topics import TopicSpec, dlq_topic, ensure_topics
from shared.observability.context import bound

log = logging.getLogger(__name__)

APPLIED = Counter("aidline_consumer_applied_total", "Events applied", ["consumer", "topic"])
DUPLICATES = Counter(
    "aidline_consumer_duplicates_total", "Redelivered events skipped", ["consumer", "topic"]
)
DEAD_LETTERS = Counter(
    "aidline_consumer_dlq_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)
LAG = Gauge(
    "aidline_consumer_lag", "Messages behind the partition end", ["consumer", "topic", "partition"]
)
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
# Offsets reached by polls of events a consumer passes over are written at most this often.
OFFSETS_PASSED_OVER_SECONDS = 1.0
# How long the broker may hold a fetch for partitions that have nothing new. The client keeps one
# fetch in flight per broker and sends none for partitions whose records it still holds, so while
# a long fetch for caught-up partitions waits, a partition with a backlog waits with it: a replay
# of three topics ran at 23k events/s with Kafka's 500 ms, 30k with 100 ms.
FETCH_MAX_WAIT_MS = 100


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    event: Envelope
    # The record's value as received (the data's JSON), for handlers that store it as it is.
    raw: bytes | None = field(default=None, repr=False, compare=False)

    def follow_up(self, actor: str = "system") -> Metadata:
        """Metadata for the events a handler stores in answer to this one: the same correlation
        id (so the work can be followed across services), caused by this event."""
        cause = str(self.event.event_id)
        return Metadata(
            actor=actor,
            correlation_id=self.event.meta.correlation_id or cause,
            causation_id=cause,
        )


Handler = Callable[[Transaction, Message], Awaitable[None]]
# Applies several messages (in offset order within each partition) at once: for consumers that
# write their effects in bulk. Called with a single message when a batch is retried one by one.
BatchHandler = Callable[[Transaction, Sequence[Message]], Awaitable[None]]
# Called after a batch's transaction has committed, with the messages it applied.
CommitListener = Callable[[Sequence[Message]], None]


@dataclass
class ConsumerHealth:
    running: bool
    seconds_since_poll: float | None
    lag: int
    lag_growing_seconds: float
    applied: int
    dead_lettered: int
    ok: bool
    problems: list[str] = field(default_factory=list)


def _is_connection_failure(exc: BaseException) -> bool:
    return (isinstance(exc, DBAPIError) and exc.connection_invalidated) or isinstance(
        exc, (ConnectionError, OSError)
    )


# PostgreSQL's verdicts on transactions that met another's: never a message's fault. Retried
# as a whole batch, they meet the other's work committed.
_DEADLOCK, _SERIALIZATION, _LOCK_NOT_AVAILABLE, _UNIQUE = "40P01", "40001", "55P03", "23505"
_CONCURRENCY = frozenset({_DEADLOCK, _SERIALIZATION, _LOCK_NOT_AVAILABLE})


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, raised by the driver or wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _is_concurrency_failure(exc: BaseException) -> bool:
    return _sqlstate(exc) in _CONCURRENCY


class _RetryBatch(Exception):
    """The batch failed in a way a new transaction may not: another writer took a unique key
    meanwhile (the new one sees its row), or it was not looked up in the handler's record of
    applied events (now it is). Applied again whole before it is split message by message
    (in a pass that cannot lock rows in one order, and so can deadlock)."""


class EventConsumer:
    def __init__(
        self,
        name: str,
        topics: Sequence[str],
        handler: Handler | None,
        store: EventStore,
        *,
        bootstrap_servers: str,
        max_attempts: int = 3,
        batch_size: int = 500,
        stall_seconds: float = 60.0,
        retry_backoff_seconds: float = 0.05,
        batch_handler: BatchHandler | None = None,
        on_commit: CommitListener | None = None,
        start_at: Literal["earliest", "latest"] = "earliest",
        recorded_by_handler: sa.Column[uuid.UUID] | None = None,
        event_types: Collection[str] | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give either a handler or a batch_handler")
        self.name = name
        self.topics = list(topics)
        self.handler = handler
        self.batch_handler: BatchHandler = batch_handler or self._one_by_one
        self.on_commit = on_commit
        # Where a partition this consumer has never applied starts: the beginning (a service
        # must see everything) or, to attach to live traffic only, the current end.
        self.start_at = start_at
        # The batch handler's own record of the events it applied (see the module docstring).
        self.recorded_by_handler = recorded_by_handler
        # The types the handler acts on (None: all). Others are passed over in the poll: no
        # duplicate check, no tracking record (they have no effect to repeat), only the offset.
        self.event_types = frozenset(event_types) if event_types is not None else None
        self._own_lookup_sql = self._lookup_sql = (
            "SELECT event_id FROM processed_events WHERE consumer = $1"
            " AND event_id = ANY($2::uuid[])"
        )
        if recorded_by_handler is not None:
            table, column = recorded_by_handler.table.name, recorded_by_handler.name
            self._lookup_sql += (
                f' UNION ALL SELECT "{column}" FROM "{table}" WHERE "{column}" = ANY($2::uuid[])'
            )
        self.store = store
        self.bootstrap_servers = bootstrap_servers
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.stall_seconds = stall_seconds
        self.retry_backoff_seconds = retry_backoff_seconds
        self.applied = 0
        self.dead_lettered = 0
        self.last_event_time: datetime | None = None
        self._running = False
        self._last_poll: float | None = None
        self._lag: dict[TopicPartition, int] = {}
        self._lag_total = 0
        self._lag_growing_since: float | None = None
        # Partitions whose offset row exists (committed): updated in one statement per batch.
        self._offset_rows: set[TopicPartition] = set()
        self._advisory: dict[TopicPartition, int] = {}
        # Held while a batch's transaction runs: a rebalance waits for it, so the offsets it
        # reads and seeks to include that batch.
        self._applying = asyncio.Lock()
        # The next offset committed per partition: records below it (fetched again after a
        # seek) were applied already and are skipped, malformed ones included.
        self._committed: dict[TopicPartition, int] = {}
        # Offsets reached by polls of passed-over events only, not written yet.
        self._passed_over: dict[TopicPartition, int] = {}
        self._passed_over_saved_at = 0.0
        self._advised_at = 0.0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: Any = None
        self.assigned = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled; restart the Kafka client after any unexpected failure."""
        await ensure_topics(
            self.bootstrap_servers, [TopicSpec(dlq_topic(t, self.name), 1) for t in self.topics]
        )
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer %s failed; restarting", self.name)
                await asyncio.sleep(1.0)

    async def _consume(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.name,
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
        self._producer = new_producer(self.bootstrap_servers)
        await self._producer.start()
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_SeekToStoredOffsets(self))
        self._running = True
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=self.batch_size)
                self._last_poll = time.monotonic()
                if batches:
                    await self._apply_batch(batches)
                await self._update_lag()
        finally:
            self._running = False
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()

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

    async def _apply_batch(
        self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> None:
        attempt = 1
        while True:
            try:
                async with self._applying:
                    applied, dead = await self._apply_in_transaction(batches, attempt)
                break
            except Exception as exc:
                if _is_connection_failure(exc):
                    log.warning("consumer %s: database unavailable, retrying batch: %r",
                                self.name, exc)  # fmt: skip
                    await asyncio.sleep(1.0)
                elif isinstance(exc, _RetryBatch) or _is_concurrency_failure(exc):
                    level = logging.INFO if attempt < 5 else logging.WARNING
                    log.log(level, "consumer %s: applying the batch again (attempt %d) after %r",
                            self.name, attempt + 1, exc.__cause__ or exc)  # fmt: skip
                    await asyncio.sleep(self.retry_backoff_seconds * min(attempt, 10))
                else:
                    raise
            attempt += 1
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
            if self.on_commit is not None:
                try:
                    self.on_commit(applied)
                except Exception:  # a listener's bug must not stop the consumer
                    log.exception("consumer %s: commit listener failed", self.name)
        assert self._consumer is not None
        self._advisory.update({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
        if time.monotonic() - self._advised_at >= ADVISORY_COMMIT_SECONDS:
            # Advisory only (our database holds the truth): a round trip per second, not per poll.
            with contextlib.suppress(Exception):
                await self._consumer.commit(self._advisory)
            self._advised_at = time.monotonic()

    async def _apply_in_transaction(
        self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]], attempt: int = 1
    ) -> tuple[list[Message], int]:
        """Apply a poll's records with their tracking records and offsets in one transaction;
        returns the messages applied and the number dead-lettered."""
        dead_letters: list[tuple[ConsumerRecord[Any, Any], Exception, int]] = []
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope]] = []
        for tp, rs in batches.items():
            start = self._committed.get(tp, 0)
            for record in rs:
                if record.offset < start:
                    continue  # applied before (read again after a seek)
                try:
                    event = envelope.decode(record.headers, record.value)
                except EnvelopeError as exc:
                    dead_letters.append((record, exc, 1))
                    continue
                if self.event_types is None or event.event_type in self.event_types:
                    decoded.append((record, event))
        batch_offsets = {
            tp: max(self._committed.get(tp, 0), rs[-1].offset + 1) for tp, rs in batches.items()
        }
        if not decoded and not dead_letters and self.event_types is not None:
            # Only events passed over: no transaction. Their offsets are written with the next
            # one, or at most once per OFFSETS_PASSED_OVER_SECONDS; until then a restart reads
            # them again and passes them over again.
            self._committed.update(batch_offsets)
            self._passed_over.update(batch_offsets)
            if time.monotonic() - self._passed_over_saved_at < OFFSETS_PASSED_OVER_SECONDS:
                return [], 0
        async with self.store.db.engine.begin() as conn:
            # The handler's own record needs no look-up on a first attempt (module docstring).
            unchecked = self.recorded_by_handler is not None and attempt == 1
            ids = {e.event_id for _, e in decoded}
            done = await self._already_processed(conn, ids, handler_record=not unchecked)
            messages: list[Message] = []
            records: list[ConsumerRecord[Any, Any]] = []  # each message's record
            for record, event in decoded:
                if event.event_id in done:
                    DUPLICATES.labels(self.name, record.topic).inc()
                    continue
                done.add(event.event_id)
                records.append(record)
                messages.append(
                    frozen(
                        Message,
                        {
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "event": event,
                            "raw": record.value,
                        },
                    )
                )
            applied = await self._apply_all(
                conn, messages, first_attempt=attempt == 1, unchecked=unchecked
            )
            if applied is None:
                applied, failed = await self._apply_each(conn, messages)
                record_of = {id(m): r for m, r in zip(messages, records, strict=True)}
                dead_letters += [(record_of[id(m)], e, self.max_attempts) for m, e in failed]
            dead_letters.sort(key=lambda d: (d[0].topic, d[0].partition, d[0].offset))
            for record, error, attempts in dead_letters:
                await self._dead_letter(record, error, attempts=attempts)
            now = datetime.now(UTC)
            tracked = messages
            if self.recorded_by_handler is not None:  # the handler recorded what it applied
                tracked = []
                if applied is not messages:  # what it did not apply (dead-lettered) needs ours
                    done_by_handler = {id(m) for m in applied}
                    tracked = [m for m in messages if id(m) not in done_by_handler]
            await insert_rows(
                conn,
                processed_events,
                ("consumer", "event_id", "processed_at"),
                [(self.name, m.event.event_id, now) for m in tracked],
            )
            next_offsets = self._passed_over | batch_offsets
            inserted = await self._save_offsets(conn, next_offsets)
        self._offset_rows |= inserted  # only once committed
        self._committed.update(next_offsets)
        self._passed_over.clear()
        self._passed_over_saved_at = time.monotonic()
        return applied, len(dead_letters)

    async def _apply_all(
        self,
        conn: AsyncConnection,
        messages: list[Message],
        *,
        first_attempt: bool = True,
        unchecked: bool = False,
    ) -> list[Message] | None:
        """The fast path: the whole batch in one savepoint; None if anything in it failed.
        A batch `unchecked` against the handler's record of applied events is retried (and
        checked) before it is split."""
        if not messages:
            return []
        tx = Transaction(conn, self.store)
        try:
            async with conn.begin_nested():
                await self.batch_handler(tx, messages)
                await tx.flush()
            return messages
        except Exception as exc:
            if _is_connection_failure(exc) or _is_concurrency_failure(exc):
                raise
            if unchecked or (first_attempt and _sqlstate(exc) == _UNIQUE):
                raise _RetryBatch() from exc
            log.info(
                "consumer %s: batch of %d failed (%r); applying it message by message",
                self.name,
                len(messages),
                exc,
            )
            return None

    async def _apply_each(
        self, conn: AsyncConnection, messages: list[Message]
    ) -> tuple[list[Message], list[tuple[Message, Exception]]]:
        applied: list[Message] = []
        failed: list[tuple[Message, Exception]] = []
        for message in messages:
            error = await self._apply_one(Transaction(conn, self.store), message)
            if error is None:
                applied.append(message)
            else:
                failed.append((message, error))
        return applied, failed

    async def _apply_one(self, tx: Transaction, message: Message) -> Exception | None:
        """Apply one message in a savepoint; returns the last error if every attempt failed."""
        error: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with tx.conn.begin_nested():
                    await self.batch_handler(tx, [message])
                    await tx.flush()
                return None
            except Exception as exc:
                if _is_connection_failure(exc) or _is_concurrency_failure(exc):
                    raise  # the whole batch is retried
                tx._pending.clear()
                error = exc
                log.warning(
                    "consumer %s: %s at %s/%d/%d failed (attempt %d/%d): %r",
                    self.name,
                    message.event.event_type,
                    message.topic,
                    message.partition,
                    message.offset,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                if attempt < self.max_attempts:
                    await asyncio.sleep(self.retry_backoff_seconds * attempt)
        return error

    async def _already_processed(
        self, conn: AsyncConnection, ids: set[uuid.UUID], *, handler_record: bool = True
    ) -> set[uuid.UUID]:
        """Which of `ids` this consumer has applied or dead-lettered; without `handler_record`,
        only those its own tracking rows name."""
        if not ids:
            return set()
        if self.store.db.postgres:  # one prepared statement, whatever the batch size
            driver = await driver_connection(conn)
            sql = self._lookup_sql if handler_record else self._own_lookup_sql
            found = await driver.fetch(sql, self.name, list(ids))
            return {row[0] for row in found}
        query: sa.Select[tuple[uuid.UUID]] | sa.CompoundSelect[tuple[uuid.UUID]] = sa.select(
            processed_events.c.event_id
        ).where(processed_events.c.consumer == self.name, processed_events.c.event_id.in_(ids))
        if self.recorded_by_handler is not None and handler_record:
            column = self.recorded_by_handler
            query = sa.union_all(query, sa.select(column).where(column.in_(ids)))
        rows = await conn.execute(query)
        return {row[0] for row in rows}

    async def processed(self, event_id: uuid.UUID) -> bool:
        """Whether this consumer has applied (or dead-lettered) `event_id`."""
        async with self.store.db.engine.connect() as conn:
            return bool(await self._already_processed(conn, {event_id}))

    async def _save_offsets(
        self, conn: AsyncConnection, next_offsets: dict[TopicPartition, int]
    ) -> set[TopicPartition]:
        """Store each partition's next offset; returns the partitions whose row it created."""
        now = datetime.now(UTC)
        known = [tp for tp in next_offsets if tp in self._offset_rows]
        if known:
            await conn.execute(
                consumer_offsets.update()
                .where(
                    (consumer_offsets.c.consumer == self.name)
                    & (consumer_offsets.c.topic == sa.bindparam("t"))
                    & (consumer_offsets.c.partition == sa.bindparam("p"))
                )
                .values(next_offset=sa.bindparam("o"), updated_at=now),
                [{"t": tp.topic, "p": tp.partition, "o": next_offsets[tp]} for tp in known],
            )
        created = set()
        for tp in next_offsets:
            if tp in self._offset_rows:
                continue
            key = (
                (consumer_offsets.c.consumer == self.name)
                & (consumer_offsets.c.topic == tp.topic)
                & (consumer_offsets.c.partition == tp.partition)
            )
            result = await conn.execute(
                consumer_offsets.update().where(key).values(next_offset=next_offsets[tp],
                                                             updated_at=now)
            )  # fmt: skip
            if result.rowcount == 0:
                await conn.execute(
                    consumer_offsets.insert().values(
                        consumer=self.name,
                        topic=tp.topic,
                        partition=tp.partition,
                        next_offset=next_offsets[tp],
                        updated_at=now,
                    )
                )
            created.add(tp)
        return created

    async def stored_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async with self.store.db.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(consumer_offsets).where(consumer_offsets.c.consumer == self.name)
            )
            stored = {TopicPartition(r.topic, r.partition): int(r.next_offset) for r in rows}
        return {tp: stored[tp] for tp in partitions if tp in stored}

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], error: BaseException, attempts: int
    ) -> None:
        headers = [
            *record.headers,
            ("dlq_consumer", self.name.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error", str(error)[:4000].encode()),
        ]
        topic = dlq_topic(record.topic, self.name)
        await self._producer.send_and_wait(
            topic, value=record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.name, record.topic).inc()
        log.error(
            "consumer %s: message %s/%d/%d dead-lettered to %s: %r",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            topic,
            error,
        )

    # -- liveness --------------------------------------------------------------------------

    async def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            lag = max(0, highwater - await consumer.position(tp))
            self._lag[tp] = lag
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(lag)
            total += lag
        now = time.monotonic()
        if total == 0 or total < self._lag_total:
            self._lag_growing_since = None
        elif total > self._lag_total and self._lag_growing_since is None:
            self._lag_growing_since = now
        self._lag_total = total

    @property
    def lag(self) -> dict[TopicPartition, int]:
        return dict(self._lag)

    def health(self) -> ConsumerHealth:
        now = time.monotonic()
        since_poll = None if self._last_poll is None else now - self._last_poll
        growing = 0.0 if self._lag_growing_since is None else now - self._lag_growing_since
        problems = []
        if not self._running:
            problems.append("not running")
        elif not self.assigned.is_set():
            problems.append("waiting for its partitions")
        elif since_poll is not None and since_poll > self.stall_seconds:
            problems.append(f"has not polled for {since_poll:.0f}s")
        if growing > self.stall_seconds:
            problems.append(f"lag has grown for {growing:.0f}s (now {self._lag_total})")
        return ConsumerHealth(
            running=self._running,
            seconds_since_poll=since_poll,
            lag=self._lag_total,
            lag_growing_seconds=growing,
            applied=self.applied,
            dead_lettered=self.dead_lettered,
            ok=not problems,
            problems=problems,
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.owner._applying:  # let the batch in flight commit first
            for tp in revoked:
                self.owner._committed.pop(tp, None)
                self.owner._passed_over.pop(tp, None)  # its next owner starts from the database

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.owner._consumer
        assert consumer is not None
        async with self.owner._applying:  # no batch commits between reading and seeking
            stored = await self.owner.stored_offsets(list(assigned))
            new = [tp for tp in assigned if tp not in stored]
            if new and self.owner.start_at == "latest":
                # Remember the start at once: a restart before the first message must not
                # move it on past what arrived meanwhile.
                ends = await consumer.end_offsets(new)
                async with self.owner.store.db.engine.begin() as conn:
                    self.owner._offset_rows |= await self.owner._save_offsets(conn, ends)
                stored |= ends
            for tp in assigned:
                if tp in stored:
                    consumer.seek(tp, stored[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            self.owner._committed.update(stored)
        log.info(
            "consumer %s assigned %s (stored offsets: %s)",
            self.owner.name,
            sorted(assigned),
            stored,
        )
        self.owner.assigned.set()
