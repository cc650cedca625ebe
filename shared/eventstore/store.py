"""The append-only event store: the service's source of truth and the relay's outbox.

Ordering guarantee: readers following `position` never skip an event whose transaction commits
late. On PostgreSQL every appending transaction takes one transaction-scoped advisory lock just
before it inserts and keeps it until commit, so positions are handed out and committed strictly
one transaction after another (a rolled-back transaction leaves a gap, never a late arrival). On
SQLite writers are serialised by the database lock (`BEGIN IMMEDIATE`), which gives the same.
The lock is taken as late as possible (at flush, after the command's own reads), so it is held
only for the inserts and the commit; a unit of work from `append_only()` sends its inserts as one
statement that commits as it runs, so there the lock never waits on the client.
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
from typing import Any, NamedTuple

import asyncpg
import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.db.bulk import driver_connection
from shared.domain.events import Metadata, NewEvent, StoredEvent
from shared.eventstore.tables import events
from shared.observability.context import with_context

EVENTS_APPENDED = Counter(
    "aidline_events_appended_total", "Events appended to the store", ["store"]
)


class OutboxRow(NamedTuple):
    """A stored event on its way to Kafka: its data as the JSON text the store holds, its
    metadata as the fields the envelope carries (a tuple: the relay builds thousands a second).
    """

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    recorded_at: datetime
    payload: str
    actor: str
    correlation_id: str | None
    causation_id: str | None


# The relay's read, in the column order of OutboxRow (PostgreSQL; run on the driver directly).
_OUTBOX_SQL = (
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, "
    "recorded_at, data::text, coalesce(meta->>'actor', 'system'), meta->>'correlation_id', "
    "meta->>'causation_id' FROM events WHERE position > $1 ORDER BY position LIMIT $2"
)


_EVENT_COLUMNS = (
    "stream_id, stream_version, event_id, event_type, schema_version, data, meta, recorded_at"
)

# PostgreSQL appends any number of events in one statement. It takes the commit-order lock,
# queues the relay's wake-up (NOTIFY is delivered at commit) and inserts, in that order: the rows
# come out of a join with the lock's one-row subquery, so positions are drawn only once the lock
# is held. Arrays keep the text, and so the prepared statement, the same for any number of rows.
_APPEND_EVENTS = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) "
    f"SELECT {_EVENT_COLUMNS} FROM unnest("
    "$3::text[], $4::int[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[], $9::jsonb[], "
    "$10::timestamptz[]) WITH ORDINALITY "
    f"AS new_events ({_EVENT_COLUMNS}, ordinal) "
    "CROSS JOIN (SELECT pg_advisory_xact_lock($1), pg_notify($2, '')) AS lock "
    "ORDER BY ordinal RETURNING event_id, position"
)
_APPEND_PARAMETERS = 10


@functools.cache
def _append_sql(
    with_events: bool, extra: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
) -> str:
    """The append statement, with one data-modifying CTE per extra row ((table, columns, SQL
    types)): everything the unit of work writes, in one statement."""
    number = _APPEND_PARAMETERS if with_events else 0
    ctes = []
    for index, (table, columns, types) in enumerate(extra):
        casts = []
        for sql_type in types:
            number += 1
            casts.append(f"${number}::{sql_type}")
        names, values = ", ".join(columns), ", ".join(casts)
        ctes.append(f"row_{index} AS (INSERT INTO {table} ({names}) VALUES ({values}))")
    prefix = f"WITH {', '.join(ctes)} " if ctes else ""
    return prefix + (_APPEND_EVENTS if with_events else "SELECT 1 WHERE false")


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
    stored: list[StoredEvent] = field(default_factory=list)

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
            self._pending.clear()
            self._rows.clear()
            del self.stored[kept:]
            raise

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
    def __init__(self, db: Database) -> None:
        self.db = db
        # Commit-order lock key and wake-up channel are per schema: one store, one relay.
        self.lock_key = zlib.crc32(f"aidline.events.{db.schema}".encode())
        self.channel = f"aidline_events_{db.schema}"
        # In-process wake-up for the relay (SQLite has no LISTEN/NOTIFY).
        self.appended = asyncio.Event()
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.db.engine.begin() as conn:
            tx = Transaction(conn, self)
            yield tx
            await tx.flush()
        if tx.stored:
            self.appended.set()

    @asynccontextmanager
    async def append_only(self) -> AsyncIterator[Transaction]:
        """A unit of work that reads, then appends events (and rows given to `add_row`) only.

        On PostgreSQL its reads run outside a transaction (each sees what is committed, as they
        would inside one at READ COMMITTED; the expected versions make the append conditional)
        and its writes go in one statement that commits as it runs: one round trip, and the
        commit-order lock is held only while the database runs it, never while the answer
        travels back to a busy event loop. Writing through `tx.conn` is not allowed here: use
        `transaction()` for work that writes tables of its own. SQLite: a transaction."""
        if not self.db.postgres:
            async with self.transaction() as tx:
                yield tx
            return
        async with self._autocommit.connect() as conn:
            tx = Transaction(conn, self, one_statement=True)
            yield tx
            await tx.flush()
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
        new = [
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
            if self.db.postgres:
                statement = self._append_statement(new, rows)
                returned = await (
                    _fetch(conn, *statement) if direct else conn.exec_driver_sql(*statement)
                )
                position_of = {row[0]: row[1] for row in returned} if new else {}
            else:  # the database lock, BEGIN IMMEDIATE, already orders the writers
                for table, values in rows:
                    await conn.execute(table.insert(), [values])
                position_of = {}
                if new:
                    result = await conn.execute(
                        events.insert().returning(events.c.event_id, events.c.position), new
                    )
                    position_of = {row.event_id: row.position for row in result}
        except IntegrityError as exc:
            conflict = _conflicting_append(exc, pending)
            if conflict is not None:
                raise ConcurrencyError(conflict.stream_id, conflict.expected_version) from exc
            raise
        if new:
            EVENTS_APPENDED.labels(self.db.schema).inc(len(new))
        return [_stored(position_of[row["event_id"]], row) for row in new]

    def _append_statement(
        self, new: list[dict[str, Any]], rows: Sequence[tuple[sa.Table, dict[str, Any]]]
    ) -> tuple[str, tuple[Any, ...]]:
        """PostgreSQL: the SQL and parameters that write `new` events and `rows` in one go."""
        params: list[Any] = []
        if new:
            params = [
                self.lock_key,
                self.channel,
                [row["stream_id"] for row in new],
                [row["stream_version"] for row in new],
                [row["event_id"] for row in new],
                [row["event_type"] for row in new],
                [row["schema_version"] for row in new],
                [json.dumps(row["data"]) for row in new],
                [json.dumps(row["meta"]) for row in new],
                [row["recorded_at"] for row in new],
            ]
        extra = []
        for table, values in rows:
            columns = tuple(values)
            extra.append((table.name, columns, tuple(_sql_type(table.c[c]) for c in columns)))
            params.extend(
                json.dumps(value) if isinstance(table.c[name].type, sa.JSON) else value
                for name, value in values.items()
            )
        return _append_sql(bool(new), tuple(extra)), tuple(params)

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
        if self.db.postgres:  # the hot path skips SQLAlchemy's result processing
            driver = await driver_connection(conn)
            return [OutboxRow(*row) for row in await driver.fetch(_OUTBOX_SQL, position, limit)]
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
                row.position,
                row.stream_id,
                row.stream_version,
                row.event_id,
                row.event_type,
                row.schema_version,
                _aware(row.recorded_at),
                row.payload,
                row.actor or "system",
                row.correlation_id,
                row.causation_id,
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


_SQL_TYPES: dict[tuple[str, str], str] = {}


def _sql_type(column: sa.Column[Any]) -> str:
    """The column's PostgreSQL type, e.g. `JSONB` (kept: compiling a type is not free)."""
    key = (column.table.name, column.name)
    if key not in _SQL_TYPES:
        _SQL_TYPES[key] = str(column.type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    return _SQL_TYPES[key]


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
        recorded_at=_aware(row["recorded_at"]),
    )


async def _fetch(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Run `sql` on the driver's own connection, its integrity errors raised as SQLAlchemy's."""
    driver = await driver_connection(conn)
    try:
        rows: list[Any] = await driver.fetch(sql, *params)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, params, exc) from exc
    return rows


def _aware(moment: datetime) -> datetime:
    """SQLite gives stored times back without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _from_row(row: sa.Row[Any]) -> StoredEvent:
    return _stored(row.position, row._mapping)
