"""Row helpers for the services' own state tables, portable across PostgreSQL and SQLite."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Insert the row with `key`, or update its `values` if it is there: one statement where
    an update, then an insert when it found nothing, took two round trips."""
    await upsert_all(conn, table, tuple(key), [{**key, **values}])


async def upsert_all(
    conn: AsyncConnection, table: sa.Table, key: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """`upsert` of rows with the same columns (`key`: the names of the key's columns): one
    statement, executed for each row."""
    if rows:
        columns = tuple(name for name in rows[0] if name not in key)
        await conn.execute(_upsert(table, key, columns), rows)


async def insert_new(conn: AsyncConnection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Insert `row` unless a row with its key is there already (left as it is): one round
    trip where a look-up and an insert took two."""
    await conn.execute(_insert(table, tuple(row), "ON CONFLICT DO NOTHING"), row)


@functools.cache
def _upsert(table: sa.Table, key: tuple[str, ...], columns: tuple[str, ...]) -> sa.TextClause:
    """Built once per table, key and columns, as `_insert` (the delivery consumer's hot path)."""
    target = ", ".join(map(_quoted, key))
    updates = ", ".join(f"{_quoted(name)} = excluded.{_quoted(name)}" for name in columns)
    action = f"DO UPDATE SET {updates}" if columns else "DO NOTHING"
    return _insert(table, (*key, *columns), f"ON CONFLICT ({target}) {action}")


@functools.cache
def _insert(table: sa.Table, columns: tuple[str, ...], on_conflict: str) -> sa.TextClause:
    """`INSERT … ON CONFLICT …`, the same SQL on PostgreSQL and SQLite, built once per table,
    columns and conflict clause: consumers run it for every event. Text, not SQLAlchemy's
    `insert().on_conflict_do_…()`: those constructs have no cache key (`inherit_cache =
    False` in 2.0), so they were compiled again at every execution, 144 against 317 µs of CPU
    per insert. The parameters keep their columns' types: values convert as in any insert."""
    names, values = ", ".join(map(_quoted, columns)), ", ".join(f":{n}" for n in columns)
    sql = f"INSERT INTO {_quoted(table.name)} ({names}) VALUES ({values}) {on_conflict}"
    return sa.text(sql).bindparams(*(sa.bindparam(n, type_=table.c[n].type) for n in columns))


def _quoted(name: str) -> str:
    return f'"{name}"'  # a name may be a keyword (`view`); both backends take double quotes


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives stored times back without their zone; they were written in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
