"""The dead-letter path: a message that cannot be applied goes to `<topic>.dlq.<consumer>` with
the error in headers, so the consumer can go on, and stays in the consumer's database, so an
operator can look at it and replay it once the cause is fixed (`redrive`).

Held, then sent: the batch's transaction writes the dead letter to `dead_letters` (with the
message's tracking record and offset), and it is published only once that transaction has
committed, then marked published when Kafka has acknowledged it. A batch rolled back and
applied again therefore publishes nothing twice, and no Kafka round trip ever happens inside a
transaction (where it would hold the store's commit-order lock, and every command of the
service with it). A process that dies between the commit and the acknowledgement leaves the row
unpublished: the consumer publishes it when it starts again. Copies of a consumer (several
processes) claim a row before publishing it. The one copy that can reach the topic twice (sent,
the process died before it was marked) carries the same `dlq_id` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import ConsumerRecord
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.eventstore.tables import dead_letters
from shared.messaging.kafka import Cluster, new_producer
from shared.messaging.topics import dlq_topic

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "aidline_consumer_dlq_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)

# How long a copy's claim on a dead letter it publishes lasts (Kafka's timeout is 15 s).
CLAIM = timedelta(seconds=60)

# A message found unfit: its record, the error, and how often it was tried.
DeadLetter = tuple[ConsumerRecord[Any, Any], BaseException, int]

# What the error text is cut to, in the header and the row.
ERROR_CHARS = 4000


class DeadLetters:
    def __init__(
        self, consumer: str, db: Database, producer: Callable[[Cluster], Any] = new_producer
    ) -> None:
        self.consumer = consumer
        self.db = db
        self.new_producer = producer  # a test may put one that hangs
        self._producer: Any = None
        # Whether rows may be waiting: unknown at start (a process may have died holding some).
        self._pending = True
        self._sending = asyncio.Lock()

    async def start(self, cluster: Cluster) -> None:
        self._producer = self.new_producer(cluster)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def hold(self, conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
        """Write `letters` in the caller's transaction; `send` publishes them once committed."""
        if not letters:
            return
        now = datetime.now(UTC)
        rows = []
        for record, error, attempts in letters:
            text = str(error)[:ERROR_CHARS]
            headers = [
                *record.headers,
                ("dlq_consumer", self.consumer.encode()),
                ("dlq_original_topic", record.topic.encode()),
                ("dlq_original_partition", str(record.partition).encode()),
                ("dlq_original_offset", str(record.offset).encode()),
                ("dlq_attempts", str(attempts).encode()),
                ("dlq_error_type", type(error).__name__.encode()),
                ("dlq_error", text.encode()),
            ]
            event_id, event_type = _identity(record.headers)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "consumer": self.consumer,
                    "topic": dlq_topic(record.topic, self.consumer),
                    "original_topic": record.topic,
                    "original_partition": record.partition,
                    "original_offset": record.offset,
                    "key": record.key,
                    "value": record.value,
                    "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in headers],
                    "created_at": now,
                    "event_id": event_id,
                    "event_type": event_type,
                    "error_type": type(error).__name__[:200],
                    "error": text,
                    "attempts": attempts,
                }
            )
        await conn.execute(dead_letters.insert(), rows)

    def committed(self) -> None:
        """A transaction that held dead letters has committed: `send` has work."""
        self._pending = True

    async def send(self) -> int:
        """Publish every held dead letter of this consumer, marking each published once Kafka
        has it; returns how many were sent. Called after commits and at start, outside
        transactions."""
        if not self._pending:
            return 0
        async with self._sending:  # one sender: a row is never sent twice by this process
            self._pending = False  # a commit meanwhile sets it again
            async with self.db.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(dead_letters)
                        .where(
                            (dead_letters.c.consumer == self.consumer)
                            & dead_letters.c.published_at.is_(None)
                        )
                        .order_by(
                            dead_letters.c.created_at,
                            dead_letters.c.original_topic,
                            dead_letters.c.original_partition,
                            dead_letters.c.original_offset,
                        )
                    )
                ).all()
            sent = 0
            try:
                for row in rows:
                    if not await self._claim(row.id, datetime.now(UTC) + CLAIM):
                        # Another copy is publishing it, or died claiming it: look again at
                        # the next poll (its claim expires).
                        self._pending = True
                        continue
                    try:
                        await self._publish(row)
                    except BaseException:
                        with contextlib.suppress(Exception):  # else it expires
                            await self._claim(row.id, None)
                        raise
                    async with self.db.engine.begin() as conn:
                        await conn.execute(
                            dead_letters.update()
                            .where(dead_letters.c.id == row.id)
                            .values(published_at=datetime.now(UTC), claimed_until=None)
                        )
                    sent += 1
            except BaseException:
                self._pending = True  # the rest waits for the next call
                raise
            return sent

    async def _claim(self, letter: uuid.UUID, until: datetime | None) -> bool:
        """Make `letter` this copy's to publish until `until` (copies of a consumer share the
        table and each sends what it finds; a claim that outlives its copy expires), or give
        it back (None, after a failed publish)."""
        row = dead_letters.c
        where = (row.id == letter) & row.published_at.is_(None)  # not sent by another copy
        if until is not None:
            where &= row.claimed_until.is_(None) | (row.claimed_until < datetime.now(UTC))
        async with self.db.engine.begin() as conn:
            claimed = await conn.execute(
                dead_letters.update().where(where).values(claimed_until=until)
            )
        return bool(claimed.rowcount)

    async def _publish(self, row: sa.Row[Any]) -> None:
        headers = [(k, base64.b64decode(v)) for k, v in row.headers]
        headers.append(("dlq_id", str(row.id).encode()))
        await self._producer.send_and_wait(row.topic, value=row.value, key=row.key, headers=headers)
        DEAD_LETTERS.labels(self.consumer, row.original_topic).inc()
        error = next((v.decode(errors="replace") for k, v in headers if k == "dlq_error"), "")
        log.error(
            "consumer %s: message %s/%d/%d dead-lettered to %s: %s",
            self.consumer,
            row.original_topic,
            row.original_partition,
            row.original_offset,
            row.topic,
            error,
        )


def _identity(headers: Sequence[tuple[str, bytes]]) -> tuple[uuid.UUID | None, str | None]:
    """The event id and type a record's CloudEvents headers claim (None where they do not: it
    may be dead-lettered for being malformed)."""
    found = {name: value for name, value in headers if name in ("ce_id", "ce_type")}
    try:
        event_id: uuid.UUID | None = uuid.UUID(found.get("ce_id", b"").decode())
    except (ValueError, UnicodeError):
        event_id = None
    try:
        event_type = found.get("ce_type", b"").decode()[:100] or None
    except UnicodeError:
        event_type = None
    return event_id, event_type


def original_headers(row: sa.Row[Any]) -> list[tuple[str, bytes]]:
    """The headers of the record a dead letter was made of, as the consumer received them (not
    the `dlq_*` ones this path added)."""
    return [(k, base64.b64decode(v)) for k, v in row.headers if not k.startswith("dlq_")]
