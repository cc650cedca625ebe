"""SQLite as a service's database, the embedded single-process default: a file per schema
(`aidline.db` -> `aidline.request.db`, SQLite has no schemas worth the name), WAL for readers,
`BEGIN IMMEDIATE` so writers queue instead of deadlocking (see `shared.db.dialect`)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.db.dialect import Dialect


def sqlite_path_for(url: str, schema: str) -> str:
    """The SQLite URL of one schema's file, creating its folder."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database in ("", ":memory:"):
        raise ValueError("SQLite needs a file database (each service gets its own file)")
    path = Path(database)
    path = path.with_name(f"{path.stem}.{schema}{path.suffix or '.db'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


# SQLite's result codes (and their extended codes, `SQLITE_BUSY_SNAPSHOT`...) of a database in a
# passing state: another connection holds the lock, the disk is full or failed, the file is
# read-only for now.
_TRANSIENT_CODES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
)
# The same, for errors that carry only their message.
_TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "disk is full")


class SqliteDialect(Dialect):
    name = "sqlite"
    shared_by_processes = False
    json_as_text = False

    def is_transient(self, exc: BaseException) -> bool:
        for error in (exc, getattr(exc, "orig", None), exc.__cause__):
            if not isinstance(error, sqlite3.Error):
                continue
            code = getattr(error, "sqlite_errorname", "")
            if code.startswith(_TRANSIENT_CODES):
                return True
            if any(m in str(error).lower() for m in _TRANSIENT_MESSAGES):
                return True
        return False

    def engine(
        self, url: str, schema: str, *, pool_size: int, echo: bool, settings: Mapping[str, str]
    ) -> tuple[str, AsyncEngine]:
        path = sqlite_path_for(url, schema)
        engine = create_async_engine(path, echo=echo, connect_args={"timeout": 30})
        _configure(engine)
        return path, engine

    async def create_schema(self, engine: AsyncEngine, schema: str) -> None:
        return None  # the file is the schema

    async def drop_schema(self, engine: AsyncEngine, url: str, schema: str) -> None:
        await engine.dispose()
        path = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def insert_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> None:
        if rows:
            await conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])

    async def lock_transaction(self, conn: AsyncConnection, key: int) -> None:
        return None  # BEGIN IMMEDIATE: one writer at a time already

    @contextlib.asynccontextmanager
    async def hold_lock(self, engine: AsyncEngine, key: int) -> AsyncIterator[None]:
        yield  # one process uses the file

    async def lock_held(self, engine: AsyncEngine, key: int) -> bool:
        return False


def _configure(engine: AsyncEngine) -> None:
    """WAL for concurrent readers; BEGIN IMMEDIATE so writers queue instead of deadlocking."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
