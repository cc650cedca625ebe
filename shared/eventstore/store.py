"""The append-only event store: the service's source of truth and the relay's outbox.

Ordering guarantee: readers following `position` never skip an event whose transaction commits
late. On PostgreSQL every appending transaction takes one transaction-scoped advisory lock just
before it inserts and keeps it until commit, so positions are handed out and committed strictly
one transaction after another (a rolled-back transaction leaves a gap, never a late arrival). On
SQLite writers are serialised by the database lock (`BEGIN IMMEDIATE`), which gives the same.
The lock is taken as late as possible (at flush, after the command's own reads), so it is held
only for the inserts and the commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import uuid
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.domain.events import Metadata, NewEvent, StoredEvent
from shared.eventstore.tables import events
from shared.observability.context import with_context

EVENTS_APPENDED = Counter(
    "aidline_events_appended_total", "Events appended to the store", ["store"]
)


@dataclass(frozen=True)
class OutboxRow:
    """A stored event on its way to Kafka: its data as the JSON text the store holds."""

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    meta: Metadata
    recorded_at: datetime
    payload: str


# Appends up to this many events go in one statement with the lock (the common case: one
# command, a few events); larger ones would exceed the driver's bind parameter limit.
_ONE_STATEMENT_ROWS = 64


@functools.cache
def _locked_insert_sql(count: int) -> sa.TextClause:
    """The locked insert of `count` rows (cached: SQL text compiles once per row count)."""
    rows = ", ".join(
        f"({n}, :stream_id_{n}, :stream_version_{n}, CAST(:event_id_{n} AS uuid), "
        f":event_type_{n}, :schema_version_{n}, CAST(:data_{n} AS jsonb), "
        f"CAST(:meta_{n} AS jsonb), CAST(:recorded_at_{n} AS timestamptz))"
        for n in range(count)
    )
    columns = (
        "stream_id, stream_version, event_id, event_type, schema_version, data, meta, recorded_at"
    )
    return sa.text(
        f"INSERT INTO events ({columns}) "
        f"SELECT {columns} FROM (VALUES {rows}) AS new_events (ordinal, {columns}) "
        "CROSS JOIN (SELECT pg_advisory_xact_lock(:lock_key), pg_notify(:channel, '')) AS lock "
        "ORDER BY ordinal RETURNING event_id, position"
    )


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
    """One unit of work: reads and appends to any number of streams, committed together."""

    conn: AsyncConnection
    store: EventStore
    _pending: list[_PendingAppend] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)

    def append(self, stream_id: str, expected_version: int, new_events: Sequence[NewEvent]) -> None:
        """Queue events for `stream_id`, which the caller read at `expected_version` (0 = new).

        Events without a correlation/causation id take the ones bound to the request or message
        being handled (shared.observability.context)."""
        if new_events:
            stamped = [dataclasses.replace(e, meta=with_context(e.meta)) for e in new_events]
            self._pending.append(_PendingAppend(stream_id, expected_version, stamped))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of the transaction that is kept or undone as a whole, its events included.

        Events queued before it are appended first, so undoing it takes back only its own."""
        await self.flush()
        kept = len(self.stored)
        try:
            async with self.conn.begin_nested():
                yield
                await self.flush()
        except BaseException:
            self._pending.clear()
            del self.stored[kept:]
            raise

    async def flush(self) -> list[StoredEvent]:
        pending, self._pending = self._pending, []
        if not pending:
            return []
        stored = await self.store.insert(self.conn, pending)
        self.stored.extend(stored)
        return stored


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Commit-order lock key and wake-up channel are per schema: one store, one relay.
        self.lock_key = zlib.crc32(f"aidline.events.{db.schema}".encode())
        self.channel = f"aidline_events_{db.schema}"
        # In-process wake-up for the relay (SQLite has no LISTEN/NOTIFY).
        self.appended = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.db.engine.begin() as conn:
            tx = Transaction(conn, self)
            yield tx
            await tx.flush()
        if tx.stored:
            self.appended.set()

    async def append(
        self, stream_id: str, expected_version: int, new_events: Sequence[NewEvent]
    ) -> list[StoredEvent]:
        async with self.transaction() as tx:
            tx.append(stream_id, expected_version, new_events)
        return tx.stored

    async def insert(
        self, conn: AsyncConnection, pending: Sequence[_PendingAppend]
    ) -> list[StoredEvent]:
        now = datetime.now(UTC)
        rows = [
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
        try:
            if self.db.postgres and len(rows) <= _ONE_STATEMENT_ROWS:
                result = await conn.execute(self._locked_insert(rows))
            else:
                if self.db.postgres:  # a large append: the lock first, then a bulk insert
                    await conn.execute(
                        sa.select(
                            sa.func.pg_advisory_xact_lock(self.lock_key),
                            sa.func.pg_notify(self.channel, ""),
                        )
                    )
                # (SQLite: the database lock, BEGIN IMMEDIATE, already orders the writers.)
                result = await conn.execute(
                    events.insert().returning(events.c.event_id, events.c.position), rows
                )
        except IntegrityError as exc:
            conflict = _conflicting_append(exc, pending)
            if conflict is not None:
                raise ConcurrencyError(conflict.stream_id, conflict.expected_version) from exc
            raise
        position_of = {row.event_id: row.position for row in result}
        EVENTS_APPENDED.labels(self.db.schema).inc(len(rows))
        return [_stored(position_of[row["event_id"]], row) for row in rows]

    def _locked_insert(self, rows: list[dict[str, Any]]) -> sa.TextClause:
        """PostgreSQL: one statement takes the commit-order lock, queues the relay's wake-up
        (NOTIFY is delivered at commit) and inserts, in that order: the rows come out of a join
        with the lock's one-row subquery, so positions are drawn only once the lock is held."""
        params: dict[str, Any] = {"lock_key": self.lock_key, "channel": self.channel}
        for n, row in enumerate(rows):
            params |= {f"{name}_{n}": value for name, value in row.items()}
            params[f"data_{n}"] = json.dumps(row["data"])
            params[f"meta_{n}"] = json.dumps(row["meta"])
        return _locked_insert_sql(len(rows)).bindparams(**params)

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
        meta = events.c.meta
        query = (
            sa.select(
                *(c for c in events.c if c.name not in ("data", "meta")),
                sa.cast(events.c.data, sa.Text).label("payload"),
                meta["actor"].as_string().label("actor"),
                meta["correlation_id"].as_string().label("correlation_id"),
                meta["causation_id"].as_string().label("causation_id"),
            )
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(limit)
        )
        return [
            OutboxRow(
                position=row.position,
                stream_id=row.stream_id,
                stream_version=row.stream_version,
                event_id=row.event_id,
                event_type=row.event_type,
                schema_version=row.schema_version,
                meta=Metadata(row.actor or "system", row.correlation_id, row.causation_id),
                recorded_at=row.recorded_at,
                payload=row.payload,
            )
            for row in await conn.execute(query)
        ]

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


def _conflicting_append(
    exc: IntegrityError, pending: Sequence[_PendingAppend]
) -> _PendingAppend | None:
    message = str(exc.orig).lower()
    if (
        "uq_events_stream_version" in message
        or "events.stream_id, events.stream_version" in message
    ):
        return pending[0] if len(pending) == 1 else _first_named(message, pending)
    return None


def _first_named(message: str, pending: Sequence[_PendingAppend]) -> _PendingAppend:
    for append in pending:
        if append.stream_id.lower() in message:
            return append
    return pending[0]


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
        recorded_at=row["recorded_at"],
    )


def _from_row(row: sa.Row[Any]) -> StoredEvent:
    return _stored(row.position, row._mapping)
