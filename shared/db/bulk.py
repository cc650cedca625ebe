"""Bulk inserts inside the caller's transaction: COPY on PostgreSQL (several times faster than
row-by-row parameters for thousands of rows), executemany elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


async def driver_connection(conn: AsyncConnection) -> Any:
    """The DBAPI driver's own connection (asyncpg's on PostgreSQL) under `conn`."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def insert_rows(
    conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows` (tuples in `columns` order); JSON columns take already-encoded text on
    PostgreSQL and Python values elsewhere."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        driver = await driver_connection(conn)
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
    else:
        await conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
