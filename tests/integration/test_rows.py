"""`shared.db.rows`' inserts on both backends: one statement each, a column named by a keyword,
values converted by their columns' types."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.db import Database
from shared.db.rows import insert_new, upsert, upsert_all

metadata = sa.MetaData()
things = sa.Table(
    "row_helpers",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("view", sa.JSON),  # a keyword on both backends
    sa.Column("count", sa.Integer),
)


async def _rows(db: Database) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(sa.select(things).order_by(things.c.key))]


async def test_upsert_inserts_a_row_then_updates_only_the_values_given(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await upsert(conn, things, {"key": "a"}, {"view": {"at": "hub"}, "count": 1})
        await upsert(conn, things, {"key": "b"}, {"view": ["x"], "count": 3})
        await upsert(conn, things, {"key": "a"}, {"count": 2})
    assert await _rows(db) == [("a", {"at": "hub"}, 2), ("b", ["x"], 3)]


async def test_insert_new_leaves_a_row_with_its_key_as_it_is(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await insert_new(conn, things, {"key": "a", "view": {"first": True}, "count": 1})
        await insert_new(conn, things, {"key": "a", "view": None, "count": 9})
        await insert_new(conn, things, {"key": "b", "count": 2})
    assert await _rows(db) == [("a", {"first": True}, 1), ("b", None, 2)]


async def test_upsert_all_writes_every_row_in_one_statement(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await upsert(conn, things, {"key": "a"}, {"view": None, "count": 1})
        await upsert_all(conn, things, ("key",), [
            {"key": "a", "view": [1], "count": 5}, {"key": "c", "view": {"n": 2}, "count": 6},
        ])  # fmt: skip
    assert await _rows(db) == [("a", [1], 5), ("c", {"n": 2}, 6)]
