"""PostgreSQL as a service's database: a schema per service, COPY for bulk rows, advisory
locks (see `shared.db.dialect` for the interface)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.db.dialect import Dialect


async def driver_connection(conn: AsyncConnection) -> Any:
    """asyncpg's own connection under `conn`: the hot paths of the PostgreSQL backend modules
    skip SQLAlchemy's statement and result processing (it costs about as much as the rest of
    a small command's append). SQLAlchemy begins a transaction on the server only before a
    statement of its own: the caller runs one first, or asyncpg's statements autocommit."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# SQLSTATEs (or their classes, two characters) of a server in a passing state: connection
# exceptions; insufficient resources (disk full 53100, out of memory, too many connections);
# operator intervention (statement timeout or cancel 57014, admin or crash shutdown 57P01/57P02,
# cannot connect now 57P03); a read-only server (25006: a standby, or a primary being failed
# over); an I/O error (58030).
_TRANSIENT_CLASSES = frozenset({"08", "53", "57"})
_TRANSIENT_STATES = frozenset({"25006", "58030"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of an error raised by asyncpg or wrapped by SQLAlchemy."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


# Up to this many rows, `insert_rows` sends an INSERT per row rather than a COPY.
FEW_ROWS = 20


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f'INSERT INTO "{table}" ({names}) VALUES ({values})'


class PostgresDialect(Dialect):
    name = "postgresql"
    shared_by_processes = True
    json_as_text = True
    scratch_table_prefixes = ("UNLOGGED",)

    def is_transient(self, exc: BaseException) -> bool:
        state = sqlstate(exc)
        if state is None:
            # asyncpg's own words for a connection that is gone (no SQLSTATE: the server
            # never answered): lost mid-query, or found closed when a query was about to go
            # out on it (`InterfaceError`, e.g. a raw append on a connection the restart of
            # the server had just closed: a 500 in the fault test's restart before).
            return any(
                isinstance(e, asyncpg.exceptions.ConnectionDoesNotExistError)
                or (isinstance(e, asyncpg.exceptions.InterfaceError) and "is closed" in str(e))
                for e in (exc, getattr(exc, "orig", None), exc.__cause__)
            )
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES

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
        # COPY: several times faster than row-by-row parameters for thousands of rows. A few
        # rows (a live consumer's batch) go in one prepared INSERT run for each row, in one
        # round trip: about 50 µs less CPU for 1 to 20 rows (300 to 340 against 350 to 380 µs
        # with the transaction around it).
        if not rows:
            return
        driver = await driver_connection(conn)
        if len(rows) <= FEW_ROWS:
            await driver.executemany(_insert_sql(table.name, tuple(columns)), rows)
        else:
            await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))

    async def lock_transaction(self, conn: AsyncConnection, key: int) -> None:
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    @contextlib.asynccontextmanager
    async def hold_lock(self, engine: AsyncEngine, key: int) -> AsyncIterator[None]:
        async with engine.connect() as conn:
            driver = await driver_connection(conn)
            await driver.execute("SELECT pg_advisory_lock($1)", key)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await driver.execute("SELECT pg_advisory_unlock($1)", key)

    async def lock_held(self, engine: AsyncEngine, key: int) -> bool:
        async with engine.connect() as conn:
            driver = await driver_connection(conn)
            if not await driver.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return True
            await driver.execute("SELECT pg_advisory_unlock($1)", key)
            return False
