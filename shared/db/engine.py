"""One async engine per service, isolated to the service's own schema (PostgreSQL) or file (SQLite).

PostgreSQL: the service's tables live in a schema named after it; `search_path` points there, so
SQL never names the schema. SQLite: the schema name becomes part of the file name
(`aidline.db` -> `aidline.request.db`), because SQLite has no schemas worth the name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


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


class Database:
    """The engine of one service's schema, plus what the backend-specific code needs to know."""

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        pool_size: int = 20,
        echo: bool = False,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        """`server_settings`: PostgreSQL settings for this engine's sessions (ignored on SQLite)."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self.postgres = is_postgres(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.postgres:
            self.url = url
            kwargs |= {
                # No overflow: an overflow connection is closed when returned, and a new one
                # costs a connect, type introspection and fresh prepared statements. Requests
                # beyond the pool wait for a connection (more would not run faster on the
                # database anyway).
                "pool_size": pool_size,
                "max_overflow": 0,
                # No pre-ping (a round trip per checkout); broken connections are replaced
                # when they fail, and recycled before servers or proxies drop them.
                "pool_recycle": 1800,
                "connect_args": {
                    "server_settings": {**(server_settings or {}), "search_path": schema}
                },
            }
        else:
            self.url = sqlite_path_for(url, schema)
            kwargs |= {"connect_args": {"timeout": 30}}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if not self.postgres:
            _configure_sqlite(self.engine)

    async def create_schema(self) -> None:
        if self.postgres:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    async def drop_schema(self) -> None:
        """Tests and rebuilds only: removes every table of this schema."""
        if self.postgres:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        else:
            await self.engine.dispose()
            path = make_url(self.url).database
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
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
