"""The event log on PostgreSQL (the interface: `shared.eventstore.log`).

Ordering: readers following `position` never skip an event whose transaction commits late.
Every appending transaction takes one transaction-scoped advisory lock just before it inserts
and keeps it until commit, so positions are handed out and committed strictly one transaction
after another (a rolled-back transaction leaves a gap, never a late arrival). An append-only
unit of work sends its inserts as one statement that commits as it runs, so the lock is never
held while the answer travels back to a busy event loop; units ready while another's statement
runs go in the next one together (`shared.eventstore.group_commit`).

One publisher per store: the relay holds a session advisory lock on a connection of its own; a
copy that dies loses the lock with its connection and another takes over. Appends NOTIFY at
commit, and the leader LISTENs; the leader's own process does not notify (its store wakes the
relay in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.db.on_demand import ConnectionOnDemand
from shared.db.postgres import driver_connection
from shared.eventstore.group_commit import GroupCommit
from shared.eventstore.log import EventLog, EventRow, ExtraRow, OutboxRow

# The relay's read, in the column order of OutboxRow.
_OUTBOX_SQL = (
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, "
    "recorded_at, data::text, coalesce(meta->>'actor', 'system'), meta->>'correlation_id', "
    "meta->>'causation_id', meta->>'occurred_at' "
    "FROM events WHERE position > $1 ORDER BY position LIMIT $2"
)

_EVENT_COLUMNS = (
    "stream_id, stream_version, event_id, event_type, schema_version, data, meta, recorded_at"
)

# Any number of events in one statement. It takes the commit-order lock, queues the relay's
# wake-up (NOTIFY is delivered at commit; its payload names the appending log, so a leader
# elsewhere can tell) and inserts, in that order: the rows come out of a join with the lock's
# one-row subquery, so positions are drawn only once the lock is held. Arrays keep the text,
# and so the prepared statement, the same for any number of rows.
_APPEND_EVENTS = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) "
    f"SELECT {_EVENT_COLUMNS} FROM unnest("
    "$2::text[], $3::int[], $4::uuid[], $5::text[], $6::int[], $7::jsonb[], $8::jsonb[], "
    "$9::timestamptz[]) WITH ORDINALITY "
    f"AS new_events ({_EVENT_COLUMNS}, ordinal) "
    "CROSS JOIN (SELECT pg_advisory_xact_lock($1){notify}) AS lock "
    "ORDER BY ordinal RETURNING event_id, position"
)
_APPEND_PARAMETERS = 9  # and the channel and the origin when it notifies
# Units of work in one statement at most: a statement of a few hundred events stays short.
GROUP_MOST = 64

# Where a publisher is: its checkpoint (or what it has published since, if further), the head,
# and when the first event it has not published was recorded. Each reads one end of an index.
_OUTBOX_STATE_SQL = (
    "WITH published AS (SELECT greatest($2::bigint, coalesce("
    "(SELECT position FROM relay_checkpoints WHERE name = $1), 0)) AS position) "
    "SELECT published.position, coalesce((SELECT max(position) FROM events), 0), "
    "(SELECT recorded_at FROM events WHERE events.position > published.position "
    "ORDER BY events.position LIMIT 1) FROM published"
)

# Autocommit on the leader's connection: one statement, one implicit transaction.
_SAVE_CHECKPOINT_SQL = "UPDATE relay_checkpoints SET position = $1, updated_at = $2 WHERE name = $3"


def _jsonb(value: Any) -> str:
    """JSON text for a JSONB parameter. orjson: several times faster than json.dumps on an
    event's data and meta, which the append encodes for every event. As before: keys that are
    not strings become strings, and NaN or an infinity is refused (PostgreSQL refused
    json.dumps' `NaN`; orjson would write null); what orjson cannot write (an integer beyond 64
    bits) goes through json.dumps."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value)
    if b"null" in text and _non_finite(value):
        raise ValueError(f"NaN and infinities are not JSON: {value!r}")
    return text.decode()


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(item) for item in value)
    return False


@functools.cache
def _append_sql(
    with_events: bool,
    notify: bool,
    extra: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...],
) -> str:
    """The append statement, with one data-modifying CTE per table of extra rows ((table,
    columns, SQL types); their values in arrays, as the events'): everything the units of work
    of a group write, in one statement whose text does not depend on how many they are."""
    number = (_APPEND_PARAMETERS + 2 * notify) if with_events else 0
    ctes = []
    for index, (table, columns, types) in enumerate(extra):
        casts = []
        for sql_type in types:
            number += 1
            casts.append(f"${number}::{sql_type}[]")
        names, values = ", ".join(columns), ", ".join(casts)
        ctes.append(
            f"row_{index} AS (INSERT INTO {table} ({names}) SELECT * FROM unnest({values}))"
        )
    prefix = f"WITH {', '.join(ctes)} " if ctes else ""
    if not with_events:
        return prefix + "SELECT 1 WHERE false"
    wake_up = ", pg_notify($10, $11)" if notify else ""
    return prefix + _APPEND_EVENTS.format(notify=wake_up)


# What a unit of work writes in one statement: its events and its extra rows.
_Writes = tuple[Sequence[EventRow], Sequence[ExtraRow]]

_SQL_TYPES: dict[tuple[str, str], str] = {}


def _sql_type(column: sa.Column[Any]) -> str:
    """The column's PostgreSQL type, e.g. `JSONB` (kept: compiling a type is not free)."""
    key = (column.table.name, column.name)
    if key not in _SQL_TYPES:
        _SQL_TYPES[key] = str(column.type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    return _SQL_TYPES[key]


class PostgresEventLog(EventLog):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        # Commit-order lock key and wake-up channel are per schema: one store, one relay.
        self.lock_key = zlib.crc32(f"aidline.events.{db.schema}".encode())
        self.channel = f"aidline_events_{db.schema}"
        # This log's appends are announced in-process (`EventStore.appended`): its leader skips
        # their notifications, which would otherwise cost the relay a second, empty read per
        # append.
        self.origin = uuid.uuid4().hex
        # While this log's relay leads (one publisher per store), its appends send no NOTIFY:
        # the leader would only pass over it. Per append: the process's CPU 301 against 331
        # µs, PostgreSQL's 159 against 205 µs (sequential appends, docs/benchmarks.md "Ninth
        # session"). An append that commits just as the leadership moves to another process
        # is published at the new leader's start, with the next notified append or on its
        # idle poll.
        self._leading = False
        self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        # The one-statement units of work of this process, a group per statement. A group the
        # database refused (a version conflict, a value too long for its column) or that could
        # not be encoded (NaN) committed nothing and may be one unit's fault: each goes alone.
        self._groups = GroupCommit(
            self._write_group,
            give_back=lambda conn: conn.close(),
            fresh=self._autocommit.connect,
            split_on=(IntegrityError, asyncpg.DataError, ValueError),
            most=GROUP_MOST,
        )

    @contextlib.asynccontextmanager
    async def append_connection(self) -> AsyncIterator[tuple[AsyncConnection, bool]]:
        # Reads outside a transaction see what is committed, as they would inside one at READ
        # COMMITTED; the expected versions make the append conditional. The connection is
        # checked out by the unit's first statement (a read, or its group's if it leads one at
        # once): a unit that only appends and waits for a group holds none, and gives nothing
        # back (docs/benchmarks.md "Eleventh session": 363-377 against 553-570 µs of CPU per
        # POST /requirements under `bench http`'s load).
        conn = ConnectionOnDemand(self._autocommit)
        try:
            yield conn, True
        finally:
            if conn.checked_out and not conn.closed:  # (a unit that waited gave it back)
                await asyncio.shield(conn.close())  # even if cancelled, as `async with` would

    async def insert(
        self,
        conn: AsyncConnection,
        new: Sequence[EventRow],
        rows: Sequence[ExtraRow],
        *,
        direct: bool,
    ) -> dict[uuid.UUID, int]:
        if direct:  # with the units ready meanwhile, if another's statement runs
            return await self._groups.commit(conn, (new, rows))
        sql, params = self._statement(new, rows)
        returned = list(await conn.exec_driver_sql(sql, params))
        return {row[0]: row[1] for row in returned}

    async def _write_group(
        self, conn: AsyncConnection, group: Sequence[_Writes]
    ) -> dict[uuid.UUID, int]:
        """The writes of a group of units of work in one statement, on the connection of the
        one leading it, through the driver itself (SQLAlchemy's execution cost as much as the
        rest of a small command's append)."""
        sql, params = self._statement(
            [row for new, _ in group for row in new], [row for _, rows in group for row in rows]
        )
        driver = await driver_connection(conn)
        try:
            returned = await driver.fetch(sql, *params)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(sql, params, exc) from exc
        return {row[0]: row[1] for row in returned}

    def payload_text(self, data: dict[str, Any]) -> str:
        # JSONB gives text back in UTF-8 with ", " and ": " between members, as json.dumps
        # does (it may write a number differently: the store's margin covers that).
        return json.dumps(data, ensure_ascii=False)

    def is_version_conflict(self, message: str) -> bool:
        return "uq_events_stream_version" in message

    def _statement(
        self, new: Sequence[EventRow], rows: Sequence[ExtraRow]
    ) -> tuple[str, tuple[Any, ...]]:
        """The append statement and its parameters for `new` events and `rows` (of any number
        of units of work)."""
        params: list[Any] = []
        if new:
            params = [
                self.lock_key,
                [row["stream_id"] for row in new],
                [row["stream_version"] for row in new],
                [row["event_id"] for row in new],
                [row["event_type"] for row in new],
                [row["schema_version"] for row in new],
                [_jsonb(row["data"]) for row in new],
                [_jsonb(row["meta"]) for row in new],
                [row["recorded_at"] for row in new],
            ]
            if not self._leading:
                params += [self.channel, self.origin]
        by_table: dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        for table, values in rows:
            by_table.setdefault((table, tuple(values)), []).append(values)
        extra = []
        for (table, columns), table_rows in by_table.items():
            extra.append((table.name, columns, tuple(_sql_type(table.c[c]) for c in columns)))
            for name in columns:
                is_json = isinstance(table.c[name].type, sa.JSON)
                params.append([_jsonb(row[name]) if is_json else row[name] for row in table_rows])
        return _append_sql(bool(new), not self._leading, tuple(extra)), tuple(params)

    async def read_outbox(
        self, conn: AsyncConnection, position: int, limit: int
    ) -> list[OutboxRow]:
        driver = await driver_connection(conn)  # no SQLAlchemy result processing
        return [OutboxRow(*row) for row in await driver.fetch(_OUTBOX_SQL, position, limit)]

    async def outbox_state(
        self, conn: AsyncConnection, name: str, published: int
    ) -> tuple[int, int, datetime | None]:
        driver = await driver_connection(conn)
        row = await driver.fetchrow(_OUTBOX_STATE_SQL, name, published)
        assert row is not None  # the CTE always gives one row
        return int(row[0]), int(row[1]), row[2]

    @contextlib.asynccontextmanager
    async def leadership(
        self, name: str, retry_seconds: float, on_append: Callable[[], None]
    ) -> AsyncIterator[AsyncConnection | None]:
        lock_key = zlib.crc32(f"aidline.relay.{self.db.schema}.{name}".encode())
        async with self.db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # A checkpoint lost in a crash only means events published again (consumers
            # drop the copies), so its commits need not wait for the disk.
            await conn.execute(sa.text("SET synchronous_commit = off"))
            while not await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(lock_key))):
                await asyncio.sleep(retry_seconds)
            raw = await driver_connection(conn)

            def _notified(_conn: object, _pid: int, _channel: str, origin: object) -> None:
                if origin != self.origin:  # this log's own appends are announced in-process
                    on_append()

            await raw.add_listener(self.channel, _notified)
            self._leading = True
            try:
                yield conn
            finally:
                self._leading = False
                # The session (its lock, its listener, `synchronous_commit` off) ends with the
                # leadership: back in the pool, a command would commit on it without waiting
                # for the disk, and could be lost in a crash after it was acknowledged.
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    async def save_checkpoint(
        self, leader: AsyncConnection | None, name: str, position: int, at: datetime
    ) -> None:
        assert leader is not None, "the PostgreSQL relay publishes from its leader connection"
        driver = await driver_connection(leader)
        await driver.execute(_SAVE_CHECKPOINT_SQL, position, at, name)
