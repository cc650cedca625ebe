"""The append-only event store: the service's source of truth and the relay's outbox.

Ordering guarantee: readers following `position` never skip an event whose transaction commits
late (how each backend keeps it: `shared.eventstore.postgres`, `shared.eventstore.sqlite`). The
commit-order lock is taken as late as possible (at flush, after the command's own reads), so it
is held only for the inserts and the commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.db.rows import aware
from shared.domain.errors import TooLarge
from shared.domain.events import Metadata, NewEvent, StoredEvent
from shared.eventstore.log import EventLog, EventRow, OutboxRow
from shared.eventstore.postgres import PostgresEventLog
from shared.eventstore.sqlite import SqliteEventLog
from shared.eventstore.tables import events
from shared.observability.context import with_context

__all__ = ["ConcurrencyError", "EventStore", "OutboxRow", "SizeLimit", "Transaction"]

# The event log of each backend (`Dialect.name`).
_LOGS: dict[str, type[EventLog]] = {"postgresql": PostgresEventLog, "sqlite": SqliteEventLog}

EVENTS_APPENDED = Counter(
    "aidline_events_appended_total", "Events appended to the store", ["store"]
)


# The largest position a store hands out (BIGINT): an event is measured before it has one.
MAX_POSITION = 2**63 - 1


@dataclass(frozen=True)
class SizeLimit:
    """The most bytes one event may take where the relay sends it, as `measure` counts them
    (Kafka's: `shared.messaging.envelope.kafka_limit`). An event above it is never stored."""

    max_bytes: int
    measure: Callable[[OutboxRow], int]
    # At least `measure` of the row's event, and cheap: an event under the limit by this figure
    # (nearly all) is not measured.
    bound: Callable[[EventRow], int] | None = None


class ConcurrencyError(Exception):
    """Another writer appended to the stream since the caller read it."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id!r} is no longer at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version


@dataclass
class _PendingAppend:
    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass
class Transaction:
    """One unit of work: reads and appends to any number of streams, committed together.

    `one_statement` (from `EventStore.append_only`): the reads run outside a transaction and
    everything the unit writes (events and rows added with `add_row`) goes in one statement at
    the end, which commits as it runs."""

    conn: AsyncConnection
    store: EventStore
    one_statement: bool = False
    _pending: list[_PendingAppend] = field(default_factory=list)
    _rows: list[tuple[sa.Table, dict[str, Any]]] = field(default_factory=list)
    _listeners: list[Callable[[bool], None]] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)

    def when_ended(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(committed)` once the unit of work has committed or rolled back: for
        work that must follow only what was committed (a rebuild a command reserved)."""
        self._listeners.append(listener)

    def ended(self, committed: bool) -> None:
        """Called by the store as the unit of work ends."""
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener(committed)

    def append(self, stream_id: str, expected_version: int, new_events: Sequence[NewEvent]) -> None:
        """Queue events for `stream_id`, which the caller read at `expected_version` (0 = new).

        Events without a correlation/causation id take the ones bound to the request or message
        being handled (shared.observability.context)."""
        if new_events:
            stamped = [dataclasses.replace(e, meta=with_context(e.meta)) for e in new_events]
            self._pending.append(_PendingAppend(stream_id, expected_version, stamped))

    def add_row(self, table: sa.Table, values: dict[str, Any]) -> None:
        """Queue a row of another table, written with the events at the next flush."""
        self._rows.append((table, values))

    @property
    def last_event_id(self) -> uuid.UUID | None:
        """The id of the last event appended or queued, if any."""
        if self._pending:
            return self._pending[-1].events[-1].event_id
        return self.stored[-1].event_id if self.stored else None

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of the transaction that is kept or undone as a whole, its events included.

        Events queued before it are appended first, so undoing it takes back only its own."""
        if self.one_statement:
            raise RuntimeError("a one-statement unit of work has no savepoints")
        await self.flush()
        kept = len(self.stored)
        try:
            async with self.conn.begin_nested():
                yield
                await self.flush()
        except BaseException:
            self.discard()
            del self.stored[kept:]
            raise

    def discard(self) -> None:
        """Drop what is queued and not written yet (a failed attempt's events and rows)."""
        self._pending.clear()
        self._rows.clear()

    async def flush(self) -> list[StoredEvent]:
        pending, self._pending = self._pending, []
        rows, self._rows = self._rows, []
        if not pending and not rows:
            return []
        if self.one_statement and self.stored:
            raise RuntimeError("a one-statement unit of work writes once, at its end")
        stored = await self.store.insert(self.conn, pending, rows, direct=self.one_statement)
        self.stored.extend(stored)
        return stored


class EventStore:
    def __init__(self, db: Database, *, size_limit: SizeLimit | None = None) -> None:
        self.db = db
        self.log: EventLog = _LOGS[db.dialect.name](db)
        self.size_limit = size_limit
        # In-process wake-up for the relay (and, through the log's leadership, other
        # processes' appends).
        self.appended = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._unit(self._begin()) as tx:
            yield tx

    @asynccontextmanager
    async def append_only(self) -> AsyncIterator[Transaction]:
        """A unit of work that reads, then appends events (and rows given to `add_row`) only.

        Where the backend allows (PostgreSQL), its reads run outside a transaction and its
        writes go in one statement that commits as it runs: one round trip, and the
        commit-order lock is held only while the database runs it; units ready together share
        the statement (`shared.eventstore.group_commit`), and a unit that waits for it gives
        `tx.conn` back meanwhile: nothing reads after the writes. Writing through `tx.conn`
        is not allowed here: use `transaction()` for work that writes tables of its own."""
        async with self._unit(self.log.append_connection()) as tx:
            yield tx

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[tuple[AsyncConnection, bool]]:
        async with self.db.engine.begin() as conn:
            yield conn, False

    @asynccontextmanager
    async def _unit(
        self, connection: AbstractAsyncContextManager[tuple[AsyncConnection, bool]]
    ) -> AsyncIterator[Transaction]:
        """A unit of work on `connection`: flushed at the end, its listeners told whether it
        committed, the relay woken."""
        tx: Transaction | None = None
        committed = False
        try:
            async with connection as (conn, one_statement):
                tx = Transaction(conn, self, one_statement=one_statement)
                yield tx
                await tx.flush()
            committed = True
        finally:
            if tx is not None:
                tx.ended(committed)
                # The relay's wake-up for this process's appends (its leader passes over their
                # notifications). Also after a failed commit, which may have committed: an
                # empty read costs less than an event waiting for the relay's safety-net poll.
                if tx.stored:
                    self.appended.set()

    async def append(
        self, stream_id: str, expected_version: int, new_events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        async with self.append_only() as tx:
            tx.append(stream_id, expected_version, new_events)
        return tx.stored

    async def insert(
        self,
        conn: AsyncConnection,
        pending: Sequence[_PendingAppend],
        rows: Sequence[tuple[sa.Table, dict[str, Any]]] = (),
        *,
        direct: bool = False,
    ) -> list[StoredEvent]:
        """Write `pending` events and `rows`. `direct`: `conn` is outside a transaction, so
        the statement may go to the driver itself (SQLAlchemy's execution costs about as much
        as the rest of a small command's append)."""
        now = datetime.now(UTC)
        new: list[EventRow] = [
            {
                "stream_id": append.stream_id,
                "stream_version": append.expected_version + offset,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "schema_version": event.schema_version,
                "data": event.data,
                "meta": event.meta.as_dict(),
                "recorded_at": now,
            }
            for append in pending
            for offset, event in enumerate(append.events, start=1)
        ]
        if self.size_limit is not None:
            for row in new:
                self._check_size(row, self.size_limit)
        try:
            position_of = await self.log.insert(conn, new, rows, direct=direct)
        except IntegrityError as exc:
            conflict = self._conflicting_append(exc, pending)
            if conflict is not None:
                raise ConcurrencyError(conflict.stream_id, conflict.expected_version) from exc
            raise
        if new:
            EVENTS_APPENDED.labels(self.db.schema).inc(len(new))
        return [_stored(position_of[row["event_id"]], row) for row in new]

    def _check_size(self, row: EventRow, limit: SizeLimit) -> None:
        """Refuse an event the relay could never publish, before anything is written: measured
        as it will be sent (the data as this backend gives it back, the longest position)."""
        if limit.bound is not None and limit.bound(row) <= limit.max_bytes:
            return
        meta = row["meta"]
        size = limit.measure(
            OutboxRow(
                MAX_POSITION,
                row["stream_id"],
                row["stream_version"],
                row["event_id"],
                row["event_type"],
                row["schema_version"],
                row["recorded_at"],
                self.log.payload_text(row["data"]),
                meta["actor"] or "system",
                meta["correlation_id"],
                meta["causation_id"],
                meta.get("occurred_at"),
            )
        )
        if size <= limit.max_bytes:
            return
        data = row["data"]
        field = max(data, key=lambda name: len(json.dumps(data[name])), default="data")
        raise TooLarge(
            field,
            f"too large: the {row['event_type']} event it makes would be {size} bytes on Kafka",
            detail=(
                f"The {row['event_type']} event would be {size} bytes on Kafka, which takes at "
                f"most {limit.max_bytes}; most of it is {field!r}. Nothing was stored."
            ),
        )

    def _conflicting_append(
        self, exc: IntegrityError, pending: Sequence[_PendingAppend]
    ) -> _PendingAppend | None:
        message = str(exc.orig).lower()
        if not self.log.is_version_conflict(message):
            return None
        if len(pending) > 1:
            for append in pending:
                if append.stream_id.lower() in message:
                    return append
        return pending[0]

    async def read_stream(
        self, conn: AsyncConnection, stream_id: str, after_version: int = 0
    ) -> list[StoredEvent]:
        query = (
            sa.select(events)
            .where(events.c.stream_id == stream_id, events.c.stream_version > after_version)
            .order_by(events.c.stream_version)
        )
        return [_from_row(row) for row in await conn.execute(query)]

    async def read_after(
        self, conn: AsyncConnection, position: int, limit: int
    ) -> list[StoredEvent]:
        query = (
            sa.select(events)
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(limit)
        )
        return [_from_row(row) for row in await conn.execute(query)]

    async def read_outbox(
        self, conn: AsyncConnection, position: int, limit: int
    ) -> list[OutboxRow]:
        """What the relay publishes: like `read_after`, but nothing is decoded in Python (the
        data stays the stored JSON text; the database picks the metadata fields out)."""
        return await self.log.read_outbox(conn, position, limit)

    async def head_position(self, conn: AsyncConnection) -> int:
        value = await conn.scalar(sa.select(sa.func.max(events.c.position)))
        return int(value or 0)

    async def existing_streams(
        self, conn: AsyncConnection, stream_ids: Sequence[str], chunk: int = 1000
    ) -> set[str]:
        """Which of `stream_ids` have events (one query per `chunk` ids)."""
        found: set[str] = set()
        for start in range(0, len(stream_ids), chunk):
            query = sa.select(events.c.stream_id).where(
                events.c.stream_id.in_(stream_ids[start : start + chunk]),
                events.c.stream_version == 1,
            )
            found.update((await conn.execute(query)).scalars())
        return found

    async def stream_version(self, conn: AsyncConnection, stream_id: str) -> int:
        value = await conn.scalar(
            sa.select(sa.func.max(events.c.stream_version)).where(events.c.stream_id == stream_id)
        )
        return int(value or 0)


def _stored(position: int, row: Mapping[Any, Any]) -> StoredEvent:
    return StoredEvent(
        position=position,
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        data=row["data"],
        meta=Metadata.from_dict(row["meta"]),
        recorded_at=aware(row["recorded_at"]),
    )


def _from_row(row: sa.Row[Any]) -> StoredEvent:
    return _stored(row.position, row._mapping)
