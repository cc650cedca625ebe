"""Alembic, run from code: each service keeps its revisions in `services/<name>/migrations`.

`upgrade(db, script_location)` is what `aidline migrate` (and, with `MIGRATE_ON_START`, a
service's start) runs; each service's `env.py` only calls `run_env()`.

Safe when several processes upgrade one schema at once (replicas starting together, two
migration Jobs): on PostgreSQL the upgrade holds a transaction-scoped advisory lock named after
the schema, so the others wait for it and then find the schema at head (nothing to do). Without
it both would run the same revision: the second fails on tables that exist, or, worse, a
revision that is not idempotent runs twice. On SQLite the schema is one file whose writers are
serialised by the file lock (`BEGIN IMMEDIATE`), the same effect.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from shared.db.engine import Database


def _config(script_location: Path, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


def lock_key(schema: str) -> int:
    """The advisory lock an upgrade of `schema` holds (per schema: services migrate apart)."""
    return zlib.crc32(f"aidline.migrate.{schema}".encode())


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    def _run(sync_conn: Connection) -> None:
        command.upgrade(_config(script_location, sync_conn), revision)

    async with db.engine.begin() as conn:
        await db.dialect.lock_transaction(conn, lock_key(db.schema))
        # Made under the lock too: two CREATE SCHEMA IF NOT EXISTS at once can still collide.
        await db.create_schema()
        await conn.run_sync(_run)


async def current_revision(db: Database) -> str | None:
    """The revision the schema is at (None: never migrated)."""

    def _read(sync_conn: Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(_read)


def head_revision(script_location: Path) -> str | None:
    return ScriptDirectory.from_config(_config(script_location)).get_current_head()


def run_env(target_metadata: Any = None) -> None:
    """Body of every service's migrations/env.py: online mode on the connection handed in."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `aidline migrate`, which supplies the connection")
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
