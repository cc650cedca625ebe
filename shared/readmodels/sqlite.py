"""Read models on SQLite: one writer, upserts (see `shared.readmodels`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

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
        if rows:
            names = [c.name for c in table.columns]
            await conn.execute(upsert(table), [dict(zip(names, r, strict=True)) for r in rows])

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


def upsert(table: sa.Table) -> Any:
    insert = sqlite.insert(table)
    key = [c.name for c in table.primary_key.columns]
    return insert.on_conflict_do_update(
        index_elements=key,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in key},
    )
