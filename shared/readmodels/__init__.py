"""Read-model storage: the interface a consumer that keeps read models writes through — rows
loaded by key and written back whole, in bulk — and the building of a new generation of them.
One implementation per backend (`postgres`, `sqlite`) holds the tuned SQL.

Rows are tuples in the table's column order; a table here has a one-column primary key.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database

Values = tuple[Any, ...]


class ReadModelSink(ABC):
    # Whether several writers may share the tables (so rows a batch creates must be claimed
    # first: `claim`).
    concurrent_writers: bool
    # JSON columns take already-encoded text (True) or Python values (False).
    json_as_text: bool

    def __init__(self, db: Database) -> None:
        self.db = db

    @abstractmethod
    async def begin_batch(self, conn: AsyncConnection) -> None:
        """Called first in every batch's transaction: it has begun on the server afterwards."""

    @abstractmethod
    async def load(
        self, conn: AsyncConnection, table: sa.Table, keys: Collection[str]
    ) -> list[Sequence[Any]]:
        """The rows with these keys, locked until the transaction ends where writers share
        the tables (in key order: two instances applying different topics to one row would
        otherwise both write back a row read before the other's change)."""

    @abstractmethod
    async def claim(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[Values]
    ) -> set[str]:
        """Insert new rows, skipping keys that exist (after waiting for a writer inserting
        them); returns the keys inserted. Only where `concurrent_writers`."""

    @abstractmethod
    async def write(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Values],
        stored: Collection[str] | None,
    ) -> None:
        """Write rows back whole: those not `stored` yet as new rows, the `stored` ones over
        the existing; without `stored`, each whichever it needs (an upsert)."""

    async def insert(
        self, conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[Values]
    ) -> None:
        """Insert rows that are new by construction (an audit trail)."""
        await self.db.dialect.insert_rows(conn, table, columns, rows)

    # -- several instances writing one generation ------------------------------------------

    async def commit_in_order(self, conn: AsyncConnection, name: str) -> None:
        """From here to its commit, the transaction goes after every other writer's of `name`
        that got here first (rows numbered from now on are numbered in commit order), and its
        commit is announced to `listen(name)` in every process. Nothing to do where one
        process writes (SQLite)."""
        return None

    @contextlib.asynccontextmanager
    async def listen(
        self, name: str, on_commit: Callable[[], None]
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Call `on_commit` after each commit announced for `name`, by any process, while
        open. Yields a check that raises once the listening connection is lost."""

        async def alive() -> None:
            return None

        yield alive

    async def delete(self, conn: AsyncConnection, table: sa.Table, keys: Collection[str]) -> None:
        if keys:
            (key,) = table.primary_key.columns
            await conn.execute(table.delete().where(key.in_(sorted(keys))))

    # -- a generation being built -----------------------------------------------------------

    @abstractmethod
    async def build_lightly(
        self, conn: AsyncConnection, metadata: sa.MetaData, *, logged: Collection[str] = ()
    ) -> None:
        """Make the freshly migrated tables cheap to fill while nobody reads them; those named
        `logged` are written durably from the start (but still get their secondary indexes
        only at the end), where making them durable at the end costs more than it saves."""

    @abstractmethod
    async def intact(self, conn: AsyncConnection) -> bool:
        """False once a database crash has emptied tables built lightly."""

    @abstractmethod
    async def make_durable(self, metadata: sa.MetaData) -> None:
        """Tables built lightly made durable, with every index, ready to answer."""

    @abstractmethod
    async def built(self, conn: AsyncConnection) -> None:
        """The generation is durable: forget that it was built lightly."""


def sink_for(db: Database) -> ReadModelSink:
    """The read-model sink of `db`'s backend."""
    from shared.readmodels.postgres import PostgresSink
    from shared.readmodels.sqlite import SqliteSink

    kinds: dict[str, type[ReadModelSink]] = {"postgresql": PostgresSink, "sqlite": SqliteSink}
    return kinds[db.dialect.name](db)
