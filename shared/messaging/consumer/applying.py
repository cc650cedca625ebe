"""Applying one poll's records exactly once.

The messages of one poll (from one or more partitions) are applied in one database transaction
together with the consumer's tracking record (`shared.messaging.tracking`): the ids of the
events applied and each partition's next offset. A redelivered or re-published event (same
ce_id) is skipped.

Speed: the whole batch is first applied in the transaction itself (one handler call per
message, or one call of a batch handler for all of them), after one statement that looks its
events up in the consumer's tracking record and records them (`Tracker.claim`, undone with the
rest if the batch fails). Only when that fails is the transaction rolled back and the batch
applied again message by message, in a new one. Where the handler keeps its own record of
applied events (`Tracker.recorded_by`), a first attempt does not look the batch's events up in
it: its unique column refuses a second application (the transaction then rolls back every
effect of the batch), and a batch that fails is looked up and applied again.

Poison messages: in the per-message pass each message runs once in its own savepoint. While a
failed message has attempts left, the transaction is rolled back (`RetryMessages`) and the caller
applies the batch again after a pause, slept outside any transaction: a sleep, like a Kafka round
trip, inside it would hold the store's commit-order lock once the batch has appended events.
A message that failed `max_attempts` times (or is not a well-formed CloudEvent) is held as a
dead letter in the batch's transaction (`deadletter.DeadLetters`, published after the commit),
recorded as processed (its copies are skipped; an operator's replay redrives it: `redrive`),
and the batch goes on. Failures that are not the message's fault
(`failures.not_the_message`, or a connection that died under the handler) propagate: the caller
applies the whole batch again, and nothing is dead-lettered for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.store import EventStore, Transaction
from shared.messaging import envelope
from shared.messaging.consumer.deadletter import DeadLetter, DeadLetters
from shared.messaging.consumer.failures import (
    UNIQUE,
    RetryBatch,
    RetryMessages,
    Transient,
    not_the_message,
    sqlstate,
)
from shared.messaging.consumer.message import BatchHandler, Message
from shared.messaging.envelope import Envelope, EnvelopeError, frozen
from shared.messaging.tracking import Tracker

log = logging.getLogger(__name__)

DUPLICATES = Counter(
    "aidline_consumer_duplicates_total", "Redelivered events skipped", ["consumer", "topic"]
)

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
# A record's place: (topic, partition, offset).
Place = tuple[str, int, int]

# Offsets reached by polls of events a consumer passes over are written at most this often.
OFFSETS_PASSED_OVER_SECONDS = 1.0


class Applier:
    def __init__(
        self,
        name: str,
        store: EventStore,
        tracker: Tracker,
        handler: BatchHandler,
        dead_letters: DeadLetters,
        *,
        event_types: Collection[str] | None,
        max_attempts: int,
        retry_backoff_seconds: float,
    ) -> None:
        self.name = name
        self.store = store
        self.tracker = tracker
        self.handler = handler
        self.dead_letters = dead_letters
        # The types the handler acts on (None: all). Others are passed over in the poll: no
        # duplicate check, no tracking record (they have no effect to repeat), only the offset.
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.max_attempts = max_attempts
        self.retry_backoff_seconds = retry_backoff_seconds
        # The next offset committed per partition: records below it (fetched again after a
        # seek) were applied already and are skipped, malformed ones included.
        self._committed: dict[TopicPartition, int] = {}
        # Offsets reached by polls of passed-over events only, not written yet.
        self._passed_over: dict[TopicPartition, int] = {}
        self._passed_over_saved_at = 0.0
        # How often each message of a batch being retried has failed (its own fault).
        self._failures: dict[Place, int] = {}

    @property
    def next_offsets(self) -> Mapping[TopicPartition, int]:
        """Each partition's next offset to apply: stored (or the partition's start) at its
        assignment, then committed."""
        return self._committed

    def resume(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The partitions were (re)assigned and seeked to these offsets (stored, or their
        start)."""
        self._committed.update(offsets)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """The partitions were revoked: their next owner starts from the database."""
        for tp in partitions:
            self._committed.pop(tp, None)
            self._passed_over.pop(tp, None)
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._failures = {p: n for p, n in self._failures.items() if p[:2] not in gone}

    async def apply(self, batches: Records, attempt: int = 1) -> tuple[list[Message], int]:
        """Apply a poll's records with their tracking records and offsets in one transaction;
        returns the messages applied and the number dead-lettered (held, and published by
        `DeadLetters.send` once this has returned)."""
        malformed: list[DeadLetter] = []
        decoded: list[tuple[ConsumerRecord[Any, Any], Envelope]] = []
        for tp, rs in batches.items():
            start = self._committed.get(tp, 0)
            for record in rs:
                if record.offset < start:
                    continue  # applied before (read again after a seek)
                try:
                    event = envelope.decode(record.headers, record.value)
                except EnvelopeError as exc:
                    malformed.append((record, exc, 1))
                    continue
                if self.event_types is None or event.event_type in self.event_types:
                    decoded.append((record, event))
        batch_offsets = {
            tp: max(self._committed.get(tp, 0), rs[-1].offset + 1) for tp, rs in batches.items()
        }
        if not decoded and not malformed and self.event_types is not None:
            # Only events passed over: no transaction. Their offsets are written with the next
            # one, or at most once per OFFSETS_PASSED_OVER_SECONDS; until then a restart reads
            # them again and passes them over again.
            self._committed.update(batch_offsets)
            self._passed_over.update(batch_offsets)
            if time.monotonic() - self._passed_over_saved_at < OFFSETS_PASSED_OVER_SECONDS:
                return [], 0
        next_offsets = self._passed_over | batch_offsets
        # A batch some of whose messages failed before goes straight to the message pass.
        # (Looked up only after a failure: otherwise a tuple and a look-up per message in an
        # empty dict, 0.14 µs of CPU per event.)
        retried = bool(self._failures) and any(_place(r) in self._failures for r, _ in decoded)
        try:
            applied, dead_letters = await self._transaction(
                decoded, malformed, next_offsets, attempt, each=retried
            )
        except _ApplyEach:  # the whole batch failed (rolled back): its messages one at a time
            applied, dead_letters = await self._transaction(
                decoded, malformed, next_offsets, attempt, each=True
            )
        if dead_letters:
            self.dead_letters.committed()
        if self._failures:
            self._failures = {
                (topic, partition, offset): n
                for (topic, partition, offset), n in self._failures.items()
                if offset >= next_offsets.get(TopicPartition(topic, partition), 0)
            }
        self._committed.update(next_offsets)
        self._passed_over.clear()
        self._passed_over_saved_at = time.monotonic()
        return applied, len(dead_letters)

    async def _transaction(
        self,
        decoded: Sequence[tuple[ConsumerRecord[Any, Any], Envelope]],
        malformed: Sequence[DeadLetter],
        next_offsets: Mapping[TopicPartition, int],
        attempt: int,
        *,
        each: bool,
    ) -> tuple[list[Message], list[DeadLetter]]:
        """One transaction: the messages not applied yet, the whole batch at once (`_ApplyEach`
        if that fails for a message's fault, the transaction rolled back) or `each` message on
        its own; the dead letters held, the tracking records and the offsets written.
        Returns the messages applied and the dead letters held."""
        dead_letters = list(malformed)
        async with self.store.db.engine.begin() as conn:
            # The handler's own record needs no look-up on a first attempt (module docstring).
            unchecked = self.tracker.recorded_by is not None and attempt == 1 and not each
            ids = {e.event_id for _, e in decoded}
            # The look-up (or claim) also begins the transaction on the server.
            own_record = self.tracker.recorded_by is None
            if own_record:  # recorded before they are applied: one statement for both
                done = ids - await self.tracker.claim(conn, ids)
            else:
                done = await self.tracker.applied(conn, ids, handler_record=not unchecked)
            messages: list[Message] = []
            records: list[ConsumerRecord[Any, Any]] = []  # each message's record
            duplicates: dict[str, int] = {}  # per topic, counted once the transaction commits
            for record, event in decoded:
                if event.event_id in done:
                    duplicates[record.topic] = duplicates.get(record.topic, 0) + 1
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
            if each:
                applied, failed = await self._apply_each(conn, messages)
                self._failed(failed)  # raises RetryMessages while attempts are left
                record_of = {id(m): r for m, r in zip(messages, records, strict=True)}
                dead_letters += [
                    (record_of[id(m)], e, self._failures[_place(m)]) for m, e in failed
                ]
            else:
                await self._apply_all(
                    conn, messages, first_attempt=attempt == 1, unchecked=unchecked
                )
                applied = messages
            dead_letters.sort(key=lambda d: (d[0].topic, d[0].partition, d[0].offset))
            await self.dead_letters.hold(conn, dead_letters)
            if not own_record and applied is not messages:
                # The handler recorded what it applied; what it did not (dead-lettered) needs
                # a record of ours.
                done_by_handler = {id(m) for m in applied}
                tracked = [m.event.event_id for m in messages if id(m) not in done_by_handler]
                await self.tracker.record(conn, tracked)
            await self.tracker.save_offsets(conn, next_offsets)
        # Not before: a batch rolled back (and applied again, or split) would count them twice.
        for topic, count in duplicates.items():
            DUPLICATES.labels(self.name, topic).inc(count)
        return applied, dead_letters

    async def _apply_all(
        self,
        conn: AsyncConnection,
        messages: list[Message],
        *,
        first_attempt: bool = True,
        unchecked: bool = False,
    ) -> None:
        """The fast path: the whole batch in the transaction, with no savepoint around it
        (SAVEPOINT and RELEASE were two more round trips in every batch); raises `_ApplyEach`
        if anything in it failed. A batch `unchecked` against the handler's record of applied
        events is retried (and checked) before it is split."""
        if not messages:
            return
        tx = Transaction(conn, self.store)
        try:
            await self.handler(tx, messages)
            await tx.flush()
        except Exception as exc:
            self._not_the_message(conn, exc)
            if unchecked or (first_attempt and sqlstate(exc) == UNIQUE):
                raise RetryBatch() from exc
            log.info(
                "consumer %s: batch of %d failed (%r); applying it message by message",
                self.name,
                len(messages),
                exc,
            )
            raise _ApplyEach() from exc

    def _not_the_message(self, conn: AsyncConnection, exc: Exception) -> None:
        """Raise (for the whole batch to be applied again) if `exc` is not the message's fault:
        the database's passing state, another writer, or a connection that died under the
        handler whatever it raised then."""
        if not_the_message(exc, self.store.db.dialect):
            raise exc
        if conn.invalidated or conn.closed:
            raise Transient(f"the connection was lost: {exc!r}") from exc

    def _failed(self, failed: Sequence[tuple[Message, Exception]]) -> None:
        """Count the failures of a message pass; while a failed message has attempts left,
        roll the batch back (`RetryMessages`) to be applied again after a pause."""
        if not failed:
            return
        counts = []
        for message, error in failed:
            place = _place(message)
            count = self._failures[place] = self._failures.get(place, 0) + 1
            counts.append(count)
            log.warning(
                "consumer %s: %s at %s/%d/%d failed (attempt %d/%d): %r",
                self.name,
                message.event.event_type,
                message.topic,
                message.partition,
                message.offset,
                count,
                self.max_attempts,
                error,
            )
        if min(counts) < self.max_attempts:
            raise RetryMessages(self.retry_backoff_seconds * min(counts))

    async def _apply_each(
        self, conn: AsyncConnection, messages: list[Message]
    ) -> tuple[list[Message], list[tuple[Message, Exception]]]:
        """Each message once, in its own savepoint: those applied, and those that failed."""
        applied: list[Message] = []
        failed: list[tuple[Message, Exception]] = []
        for message in messages:
            tx = Transaction(conn, self.store)
            try:
                async with conn.begin_nested():
                    await self.handler(tx, [message])
                    await tx.flush()
            except Exception as exc:
                self._not_the_message(conn, exc)
                failed.append((message, exc))
            else:
                applied.append(message)
        return applied, failed


class _ApplyEach(Exception):
    """The batch failed as a whole for a message's fault: apply its messages one at a time."""


def _place(message: Message | ConsumerRecord[Any, Any]) -> Place:
    return (message.topic, message.partition, message.offset)
