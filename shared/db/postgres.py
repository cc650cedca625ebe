"""PostgreSQL as a service's database: a schema per service, COPY for bulk rows, advisory
locks (see `shared.db.dialect` for the interface)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.db.dialect import Dialect


async def driver_connection(conn: AsyncConnection) -> Any:
    """asyncpg's own connection under `conn`: the hot paths of the PostgreSQL backend modules
    skip SQLAlchemy's statement and result processing (it costs about as much as the rest of
    a small command's append)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


class PostgresDialect(Dialect):
    name = "postgresql"
    shared_by_processes = True
    json_as_text = True

    def engine(
        self, url: str, schema: str, *, pool_size: int, echo: bool, settings: Mapping[str, str]
    ) -> tuple[str, AsyncEngine]:
        engine = create_async_engine(
            url,
            echo=echo,
            # No overflow: an overflow connection is closed when returned, and a new one costs
            # a connect, type introspection and fresh prepared statements. Requests beyond the
            # pool wait for a connection (more would not run faster on the database anyway).
            pool_size=pool_size,
            max_overflow=0,
            # No pre-ping (a round trip per checkout); broken connections are replaced when
            # they fail, and recycled before servers or proxies drop them.
            pool_recycle=1800,
            # The service's tables live in a schema named after it: SQL never names it.
            connect_args={"server_settings": {**settings, "search_path": schema}},
        )
        return url, engine

    async def create_schema(self, engine: AsyncEngine, schema: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    async def drop_schema(self, engine: AsyncEngine, url: str, schema: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    async def insert_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        # COPY: several times faster than row-by-row parameters for thousands of rows.
        if rows:
            driver = await driver_connection(conn)
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))

    async def lock_transaction(self, conn: AsyncConnection, key: int) -> None:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
