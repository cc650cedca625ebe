"""Replaying a dead letter once its cause is fixed: the operator's redrive (`aidline dlq
replay`), exactly once in effect.

A dead-lettered event is recorded as processed (so that its copies on the topic are skipped),
which is why publishing it again could never redrive it. A replay instead runs in the process
that owns the consumer, through the consumer's own handler (as the Applier calls it: one message,
in the consumer's store), in one transaction that

1. claims the letter: a conditional update (`replayed_at` still empty), so of two replays at
   once — in one process or in two copies of the service — one applies it and the other finds
   it replayed (on PostgreSQL the second waits for the first's row lock, then sees its commit;
   SQLite has one writer at a time);
2. removes the consumer's own tracking record of the event and looks it up in the handler's
   record (`Tracker.recorded_by`): an effect already there is not applied again;
3. runs the handler, and records the event as processed again.

If the handler fails again, everything rolls back: the letter stays, with the new error in
`replay_error`. Failures that are not the message's (the database's passing state, another
writer: `failures.not_the_message`) are tried again a few times, then reported without being
recorded. Replays take the consumer's batch lock, so a letter is never applied while this
process's consumer applies a batch (their writes could only conflict).

Order: a replayed event is applied after the events that followed it on its partition. That is
what a fix-and-replay means; handlers that depend on order must tolerate it (as they tolerate
redelivery).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.store import EventStore, Transaction
from shared.eventstore.tables import dead_letters, processed_events
from shared.messaging import envelope
from shared.messaging.consumer.deadletter import ERROR_CHARS, original_headers
from shared.messaging.consumer.failures import Transient, not_the_message
from shared.messaging.consumer.message import BatchHandler, Message
from shared.messaging.envelope import EnvelopeError
from shared.messaging.tracking import Tracker

log = logging.getLogger(__name__)

# How often a replay the database failed (not the message) is tried before it is reported.
ATTEMPTS = 3

REPLAYS = Counter(
    "aidline_consumer_dlq_replays_total",
    "Dead letters replayed, by outcome",
    ["consumer", "outcome"],
)


class Outcome(StrEnum):
    REPLAYED = "replayed"  # the handler applied it now
    ALREADY_REPLAYED = "already-replayed"  # by an earlier replay: nothing done
    ALREADY_APPLIED = "already-applied"  # its effect was there: marked replayed, not applied
    FAILED = "failed"  # the handler (or decoding) failed again: the letter stays


@dataclass(frozen=True)
class Replay:
    """What a replay of one letter did; `message`: the one applied (REPLAYED only)."""

    letter: uuid.UUID
    consumer: str
    outcome: Outcome
    error: str | None = None
    message: Message | None = None


class _Failed(Exception):
    """The handler failed: roll the replay's transaction back."""


class Redrive:
    def __init__(
        self,
        consumer: str,
        store: EventStore,
        tracker: Tracker,
        handler: BatchHandler,
        lock: asyncio.Lock,
        *,
        backoff_seconds: float = 0.05,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.tracker = tracker
        self.handler = handler
        self.lock = lock  # the consumer's batch lock
        self.backoff_seconds = backoff_seconds

    async def replay(self, letter: uuid.UUID, actor: str) -> Replay | None:
        """Replay `letter` (None: this consumer has no such letter)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.lock:
                    return await self._once(letter, actor)
            except Exception as exc:
                if not not_the_message(exc, self.store.db.dialect):
                    raise
                log.warning("consumer %s: replay of dead letter %s failed (attempt %d/%d): %r",
                            self.consumer, letter, attempt, ATTEMPTS, exc)  # fmt: skip
                if attempt == ATTEMPTS:
                    return self._result(letter, Outcome.FAILED, f"the database: {exc!r}")
                await asyncio.sleep(self.backoff_seconds * attempt)
        raise AssertionError("unreachable")

    async def _once(self, letter: uuid.UUID, actor: str) -> Replay | None:
        db = self.store.db
        async with db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(dead_letters).where(
                        (dead_letters.c.id == letter) & (dead_letters.c.consumer == self.consumer)
                    )
                )
            ).first()
        if row is None:
            return None
        if row.replayed_at is not None:
            return self._result(letter, Outcome.ALREADY_REPLAYED)
        try:
            message = _message(row)
        except EnvelopeError as exc:
            return await self._failed(letter, exc)
        try:
            async with db.engine.begin() as conn:
                if not await self._claim(conn, letter, actor):
                    return self._result(letter, Outcome.ALREADY_REPLAYED)
                outcome = await self._apply(conn, message)
        except _Failed as failed:
            return await self._failed(letter, failed.__cause__ or failed)
        log.warning("consumer %s: dead letter %s (%s at %s/%d/%d) %s by %s", self.consumer,
                    letter, message.event.event_type, message.topic, message.partition,
                    message.offset, outcome, actor)  # fmt: skip
        applied = message if outcome is Outcome.REPLAYED else None
        return self._result(letter, outcome, message=applied)

    async def _claim(self, conn: AsyncConnection, letter: uuid.UUID, actor: str) -> bool:
        claimed = await conn.execute(
            dead_letters.update()
            .where((dead_letters.c.id == letter) & dead_letters.c.replayed_at.is_(None))
            .values(replayed_at=datetime.now(UTC), replayed_by=actor[:200], replay_error=None)
        )
        return bool(claimed.rowcount)

    async def _apply(self, conn: AsyncConnection, message: Message) -> Outcome:
        """The claimed letter's message through the handler, with its tracking record."""
        event_id = message.event.event_id
        await conn.execute(
            processed_events.delete().where(
                (processed_events.c.consumer == self.consumer)
                & (processed_events.c.event_id == event_id)
            )
        )
        if await self.tracker.applied(conn, {event_id}):  # the handler's record has it
            return Outcome.ALREADY_APPLIED
        tx = Transaction(conn, self.store)
        try:
            await self.handler(tx, [message])
            await tx.flush()
        except Exception as exc:
            if not_the_message(exc, self.store.db.dialect):
                raise
            if conn.invalidated or conn.closed:  # died under the handler, whatever it raised
                raise Transient(f"the connection was lost: {exc!r}") from exc
            raise _Failed() from exc
        if self.tracker.recorded_by is None:  # else the handler recorded it
            await self.tracker.record(conn, [event_id])
        if tx.stored:
            self.store.appended.set()  # wake the relay
        return Outcome.REPLAYED

    async def _failed(self, letter: uuid.UUID, error: BaseException) -> Replay:
        """The letter stays; why this replay failed is kept with it."""
        text = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
        async with self.store.db.engine.begin() as conn:
            await conn.execute(
                dead_letters.update()
                .where((dead_letters.c.id == letter) & dead_letters.c.replayed_at.is_(None))
                .values(replay_error=text)
            )
        log.warning("consumer %s: replay of dead letter %s failed: %s", self.consumer, letter, text)
        return self._result(letter, Outcome.FAILED, text)

    def _result(
        self,
        letter: uuid.UUID,
        outcome: Outcome,
        error: str | None = None,
        *,
        message: Message | None = None,
    ) -> Replay:
        REPLAYS.labels(self.consumer, outcome).inc()
        return Replay(letter, self.consumer, outcome, error, message)


def _message(row: Any) -> Message:
    """The dead letter's message as the consumer first received it; EnvelopeError if it is not
    a well-formed CloudEvent (it never will be: such a letter cannot be replayed)."""
    event = envelope.decode(original_headers(row), row.value)
    return Message(
        topic=row.original_topic,
        partition=row.original_partition,
        offset=row.original_offset,
        event=event,
        raw=row.value,
    )
