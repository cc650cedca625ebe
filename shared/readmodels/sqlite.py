"""Read models on SQLite: one writer, upserts (see `shared.readmodels`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.rows import upsert_all
from shared.readmodels import ReadModelSink, Values


class SqliteSink(ReadModelSink):
    concurrent_writers = False
    json_as_text = False

    async def begin_batch(self, conn: AsyncConnection) -> None:
        return None

    async def load(
        self, conn: AsyncConnection, table: sa.Table, keys: Collection[str]
    ) -> list[Sequence[Any]]:
        if not keys:
            return []
        (key,) = table.primary_key.columns
        return list(await conn.execute(sa.select(table).where(key.in_(list(keys)))))

    async def claim(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[Values]
    ) -> set[str]:
        raise NotImplementedError("SQLite has one writer: nothing to claim")

    async def write(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Values],
        stored: Collection[str] | None,
    ) -> None:
        # An upsert built once per table (`shared.db.rows`): SQLAlchemy's SQLite insert with
        # `on_conflict_do_update` has no cache key and was compiled again for every batch.
        names = [c.name for c in table.columns]
        key = tuple(c.name for c in table.primary_key.columns)
        await upsert_all(conn, table, key, [dict(zip(names, r, strict=True)) for r in rows])

    async def build_lightly(
        self, conn: AsyncConnection, metadata: sa.MetaData, *, logged: Collection[str] = ()
    ) -> None:
        return None  # a file rebuilt from scratch is cheap already

    async def intact(self, conn: AsyncConnection) -> bool:
        return True

    async def make_durable(self, metadata: sa.MetaData) -> None:
        return None

    async def built(self, conn: AsyncConnection) -> None:
        return None
