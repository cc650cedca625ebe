"""How a generation that a rebuild fills is stored until it answers (PostgreSQL; SQLite keeps
its tables as they are).

While a rebuild fills a generation nobody reads it, and a database crash loses it anyway (the
rebuild is abandoned): its tables are UNLOGGED (no WAL per row) and carry only the indexes the
consumer needs (primary keys, the audit's unique event id). `finish` writes them to the WAL
once, logged from then on, and builds the other indexes before the swap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from shared.db import Database

# The consumer loads rows by key, a few thousand at a time (`= ANY($1)`). With the default
# random_page_cost (4, for spinning disks) the planner prefers a sequential scan to that many
# index probes once a table holds some 100,000 rows — a scan per batch, so a replay slows down
# as it goes — though every page it needs is in memory. 1.1 is the usual value for SSDs.
PLANNER_SETTINGS = {"random_page_cost": "1.1"}

_MARKER = "building_marker"  # unlogged like the rest: a crash empties it too
# `finish` works on this many connections at once (PostgreSQL gives each one core); the audit
# table is most of the work, the other tables fit beside it.
FINISH_CONNECTIONS = 2


async def prepare(db: Database, conn: AsyncConnection) -> None:
    """Make a freshly migrated generation's tables light to fill (in `conn`'s transaction)."""
    if db.postgres:
        await _build_lightly(conn)


async def intact(db: Database) -> bool:
    """False once a database crash has emptied a prepared generation's unlogged tables."""
    if not db.postgres:
        return True
    async with db.engine.connect() as conn:
        return await _intact(conn)


async def finish(db: Database, paused: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
    """Make a prepared generation ready to answer: its tables logged, its indexes built, while
    its consumer is `paused`. Fails if a database crash emptied it meanwhile."""
    if not db.postgres:
        return
    async with paused():
        if not await intact(db):
            raise RuntimeError("the generation was emptied by a database crash")
        await _make_durable(db)
        async with db.engine.begin() as conn:
            if not await _intact(conn):  # a crash while it was being made durable
                raise RuntimeError("the generation was emptied by a database crash")
            await conn.execute(sa.text(f'DROP TABLE "{_MARKER}"'))


def _deferred_indexes() -> list[tuple[str, sa.Index]]:
    """(table name, index) of the indexes a building generation goes without."""
    return [(table.name, i) for table in t.metadata.sorted_tables for i in table.indexes
            if not i.unique]  # fmt: skip


async def _schema_tables(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    )
    return sorted(name for (name,) in result)


async def _build_lightly(conn: AsyncConnection) -> None:
    for _table, index in _deferred_indexes():
        await conn.execute(sa.text(f'DROP INDEX "{index.name}"'))
    for name in await _schema_tables(conn):
        await conn.execute(sa.text(f'ALTER TABLE "{name}" SET UNLOGGED'))
    await conn.execute(sa.text(f'CREATE UNLOGGED TABLE "{_MARKER}" (present boolean)'))
    await conn.execute(sa.text(f'INSERT INTO "{_MARKER}" VALUES (true)'))


async def _intact(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(sa.text(f'SELECT count(*) FROM "{_MARKER}"')))


async def _make_durable(db: Database) -> None:
    """Every table but the marker logged and given its deferred indexes, a table per
    transaction, largest first, on FINISH_CONNECTIONS connections. A crash meanwhile empties
    the marker, which is dropped only afterwards."""
    async with db.engine.connect() as conn:
        result = await conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename <> :marker ORDER BY"
                " pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass) DESC"
            ),
            {"marker": _MARKER},
        )
        queue = [name for (name,) in result]
    deferred = _deferred_indexes()

    async def lane() -> None:
        while queue:
            name = queue.pop(0)
            async with db.engine.begin() as conn:
                await conn.execute(sa.text(f'ALTER TABLE "{name}" SET LOGGED'))
                for table, index in deferred:  # after SET LOGGED, which would rebuild them again
                    if table == name:
                        await conn.execute(sa.schema.CreateIndex(index))

    async with asyncio.TaskGroup() as lanes:
        for _ in range(FINISH_CONNECTIONS):
            lanes.create_task(lane())
