"""What differs between the database backends at the level of a service's database: how an
engine is configured, how a schema is made and removed, how rows go in bulk, how a transaction
takes a named lock. One implementation per backend (`shared.db.postgres`, `shared.db.sqlite`);
generic code asks `Database.dialect` and never which backend it is on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class Dialect(ABC):
    """One backend's answers for a service's database."""

    name: str
    # Whether several processes may share the database (and so need locks and leaders).
    shared_by_processes: bool

    @abstractmethod
    def engine(
        self, url: str, schema: str, *, pool_size: int, echo: bool, settings: Mapping[str, str]
    ) -> tuple[str, AsyncEngine]:
        """The schema's URL and engine; `settings` are session settings where supported."""

    @abstractmethod
    async def create_schema(self, engine: AsyncEngine, schema: str) -> None: ...

    @abstractmethod
    async def drop_schema(self, engine: AsyncEngine, url: str, schema: str) -> None:
        """Tests and rebuilds only: removes every table of this schema."""

    @abstractmethod
    async def insert_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        """Insert `rows` (tuples in `columns` order) inside the caller's transaction; JSON
        columns take text already encoded where `json_as_text`, Python values elsewhere."""

    # JSON columns take already-encoded text (True) or Python values (False) in `insert_rows`.
    json_as_text: bool
    # CREATE TABLE prefixes for tables whose rows may be lost in a crash of the database server
    # (idempotency reservations): no write-ahead log, so their commits wait for no disk.
    scratch_table_prefixes: Sequence[str] = ()

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """Whether a driver error is the database's passing state, never the statement's or
        the data's fault: connection lost, server shutting down, read-only, disk full, timed
        out, busy. Work that failed so is retried later as it was."""

    @abstractmethod
    async def lock_transaction(self, conn: AsyncConnection, key: int) -> None:
        """Hold the lock named `key` until the transaction ends (no-op where writers are
        serialised by the database itself)."""

    @abstractmethod
    def hold_lock(self, engine: AsyncEngine, key: int) -> AbstractAsyncContextManager[None]:
        """Hold the lock named `key` while open, on a connection of its own: a process that
        dies lets it go with its connection (where one process is all, nothing to hold)."""

    @abstractmethod
    async def lock_held(self, engine: AsyncEngine, key: int) -> bool:
        """Whether a live process holds `key` (`hold_lock`); never where one process is all."""


def dialect_for(url: str) -> Dialect:
    """The backend a database URL names (the one place that asks)."""
    backend = sa.engine.make_url(url).get_backend_name()
    if backend == "postgresql":
        from shared.db.postgres import PostgresDialect

        return PostgresDialect()
    if backend == "sqlite":
        from shared.db.sqlite import SqliteDialect

        return SqliteDialect()
    raise ValueError(
        f"unsupported database {backend!r}: use postgresql+asyncpg or sqlite+aiosqlite"
    )
