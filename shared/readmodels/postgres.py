"""Read models on PostgreSQL (see `shared.readmodels`).

Statements take a batch's rows as ONE array of the table's own row type (`$1::"t"[]`, each row a
tuple in column order): one prepared statement whatever the number of rows, and the driver
encodes each row's fields directly (with an array per column it inspected every element for
nested arrays, ~5 % of a replay's CPU). New rows go in by COPY, cheapest for both sides.

A generation being built is filled while nobody reads it, and a database crash loses it anyway
(the rebuild is abandoned): its tables are UNLOGGED (no WAL per row) and carry only the indexes
the consumer needs (primary keys, unique columns). `make_durable` writes them to the WAL once,
logged from then on, and builds the other indexes before the generation answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.postgres import driver_connection
from shared.readmodels import ReadModelSink, Values

_MARKER = "building_marker"  # unlogged like the rest: a crash empties it too
# `make_durable` works on this many connections at once (PostgreSQL gives each one core); the
# largest table (an audit trail) is most of the work, the others fit beside it.
FINISH_CONNECTIONS = 2


def _key(table: sa.Table) -> str:
    (key,) = table.primary_key.columns
    return key.name


@functools.cache
def _upsert_sql(table: sa.Table) -> str:
    key = _key(table)
    updates = ", ".join(f'"{c.name}" = EXCLUDED."{c.name}"' for c in table.columns if c.name != key)
    return (
        f'INSERT INTO "{table.name}" SELECT * FROM unnest($1::"{table.name}"[]) '
        f'ON CONFLICT ("{key}") DO UPDATE SET {updates}'
    )


@functools.cache
def _update_sql(table: sa.Table) -> str:
    """Whole rows known to exist (loaded in this transaction): cheaper than an upsert, which
    tries an insert first."""
    key = _key(table)
    updates = ", ".join(f'"{c.name}" = v."{c.name}"' for c in table.columns if c.name != key)
    return (
        f'UPDATE "{table.name}" AS t SET {updates} '
        f'FROM unnest($1::"{table.name}"[]) AS v WHERE t."{key}" = v."{key}"'
    )


@functools.cache
def _claim_sql(table: sa.Table) -> str:
    key = _key(table)
    return (
        f'INSERT INTO "{table.name}" SELECT * FROM unnest($1::"{table.name}"[]) '
        f'ON CONFLICT ("{key}") DO NOTHING RETURNING "{key}"'
    )


@functools.cache
def _load_sql(table: sa.Table) -> str:
    key = _key(table)
    return (
        f'SELECT * FROM "{table.name}" WHERE "{key}" = ANY($1::text[]) ORDER BY "{key}" FOR UPDATE'
    )


def _announced(name: str) -> tuple[int, str]:
    """The lock and the channel of `commit_in_order(name)`."""
    key = zlib.crc32(f"aidline.commits.{name}".encode())
    return key, f"aidline_commits_{key:08x}"  # a channel name is at most 63 bytes


class PostgresSink(ReadModelSink):
    concurrent_writers = True
    json_as_text = True

    async def commit_in_order(self, conn: AsyncConnection, name: str) -> None:
        # The lock is held to the commit; NOTIFY is delivered at the commit, in commit order.
        # Through SQLAlchemy: it begins the transaction on the server first, if nothing has.
        # As SQL text: the same select built of SQLAlchemy's constructs for every batch was
        # 7 % of py-spy's samples of a projection applying one event per batch.
        lock, channel = _announced(name)
        await conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock($1), pg_notify($2, '')", (lock, channel)
        )

    @contextlib.asynccontextmanager
    async def listen(
        self, name: str, on_commit: Callable[[], None]
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        _, channel = _announced(name)
        async with self.db.engine.connect() as conn:
            driver = await driver_connection(conn)

            def notified(*_args: object) -> None:
                on_commit()

            await driver.add_listener(channel, notified)

            async def alive() -> None:
                await driver.fetchval("SELECT 1")

            try:
                yield alive
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(channel, notified)

    async def begin_batch(self, conn: AsyncConnection) -> None:
        # The sink's statements go to the driver directly, and SQLAlchemy begins a transaction
        # on the server only before a statement of its own. A consumer's first statement (its
        # look-up of applied events) has begun it; anything else calling the handler needs
        # this round trip. (Durability is the sessions' own: `synchronous_commit` set at
        # connect, see services/projection/generations.py.)
        driver = await driver_connection(conn)
        if not driver.is_in_transaction():
            await conn.exec_driver_sql("SELECT 1")

    async def load(
        self, conn: AsyncConnection, table: sa.Table, keys: Collection[str]
    ) -> list[Sequence[Any]]:
        if not keys:
            return []
        driver = await driver_connection(conn)  # one prepared statement, rows as tuples
        return list(await driver.fetch(_load_sql(table), list(keys)))

    async def claim(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[Values]
    ) -> set[str]:
        driver = await driver_connection(conn)
        return {record[0] for record in await driver.fetch(_claim_sql(table), list(rows))}

    async def write(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Values],
        stored: Collection[str] | None,
    ) -> None:
        if not rows:
            return
        driver = await driver_connection(conn)
        statement = _upsert_sql(table)
        if stored is not None:
            key = [c.name for c in table.columns].index(_key(table))
            new = [row for row in rows if row[key] not in stored]
            if new:
                columns = [c.name for c in table.columns]
                await driver.copy_records_to_table(table.name, records=new, columns=columns)
                rows = [row for row in rows if row[key] in stored]
            if not rows:
                return
            statement = _update_sql(table)  # all of them exist
        await driver.execute(statement, list(rows))

    async def delete(self, conn: AsyncConnection, table: sa.Table, keys: Collection[str]) -> None:
        if keys:
            driver = await driver_connection(conn)
            await driver.execute(
                f'DELETE FROM "{table.name}" WHERE "{_key(table)}" = ANY($1::text[])', sorted(keys)
            )

    # -- a generation being built -----------------------------------------------------------

    async def build_lightly(
        self, conn: AsyncConnection, metadata: sa.MetaData, *, logged: Collection[str] = ()
    ) -> None:
        for _table, index in _deferred_indexes(metadata):
            await conn.execute(sa.text(f'DROP INDEX "{index.name}"'))
        for name in await _schema_tables(conn):
            if name not in logged:
                await conn.execute(sa.text(f'ALTER TABLE "{name}" SET UNLOGGED'))
        await conn.execute(sa.text(f'CREATE UNLOGGED TABLE "{_MARKER}" (present boolean)'))
        await conn.execute(sa.text(f'INSERT INTO "{_MARKER}" VALUES (true)'))

    async def intact(self, conn: AsyncConnection) -> bool:
        exists = await conn.scalar(sa.text(f"SELECT to_regclass('{_MARKER}') IS NOT NULL"))
        if not exists:
            return True  # not built lightly (or made durable already)
        return bool(await conn.scalar(sa.text(f'SELECT count(*) FROM "{_MARKER}"')))

    async def make_durable(self, metadata: sa.MetaData) -> None:
        """Every table but the marker logged and given its deferred indexes, a table per
        transaction, largest first, on FINISH_CONNECTIONS connections. A crash meanwhile
        empties the marker, which is dropped only afterwards (`built`)."""
        db = self.db
        async with db.engine.connect() as conn:
            result = await conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    " AND tablename <> :marker ORDER BY"
                    " pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass)"
                    " DESC"
                ),
                {"marker": _MARKER},
            )
            queue = [name for (name,) in result]
        deferred = _deferred_indexes(metadata)

        async def lane() -> None:
            while queue:
                name = queue.pop(0)
                async with db.engine.begin() as conn:
                    await conn.execute(sa.text(f'ALTER TABLE "{name}" SET LOGGED'))
                    for table, index in deferred:  # after SET LOGGED, which would rebuild them
                        if table == name:
                            await conn.execute(sa.schema.CreateIndex(index))

        async with asyncio.TaskGroup() as lanes:
            for _ in range(FINISH_CONNECTIONS):
                lanes.create_task(lane())

    async def built(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{_MARKER}"'))


def _deferred_indexes(metadata: sa.MetaData) -> list[tuple[str, sa.Index]]:
    """(table name, index) of the indexes a building generation goes without."""
    return [(table.name, i) for table in metadata.sorted_tables for i in table.indexes
            if not i.unique]  # fmt: skip


async def _schema_tables(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    return sorted(name for (name,) in result)
