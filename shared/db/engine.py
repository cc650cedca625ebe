"""One async engine per service, isolated to the service's own schema.

PostgreSQL: the service's tables live in a schema named after it; `search_path` points there, so
SQL never names the schema. SQLite: the schema name becomes part of the file name. What differs
lives in the backend modules (`shared.db.dialect`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.dialect import Dialect, dialect_for

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Database:
    """The engine of one service's schema, and its backend (`dialect`)."""

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
        # As configured, for every schema; `url` is this schema's (on SQLite, its own file).
        self.base_url = url
        self.dialect: Dialect = dialect_for(url)
        self.url: str
        self.engine: AsyncEngine
        self.url, self.engine = self.dialect.engine(
            url, schema, pool_size=pool_size, echo=echo, settings=server_settings or {}
        )

    async def create_schema(self) -> None:
        await self.dialect.create_schema(self.engine, self.schema)

    async def drop_schema(self) -> None:
        """Tests and rebuilds only: removes every table of this schema."""
        await self.dialect.drop_schema(self.engine, self.url, self.schema)

    async def ping(self) -> None:
        """One `SELECT 1`, tried again once on a connection the database had closed: after a
        database restart the pool's idle connections are dead, and the first use of one
        (here, hours later perhaps) fails. SQLAlchemy then replaces every connection older
        than the failure, so the second try answers for the database as it is."""
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == 2:
                    raise

    async def dispose(self) -> None:
        await self.engine.dispose()
