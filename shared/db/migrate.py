"""Alembic, run from code: each service keeps its revisions in `services/<name>/migrations`.

`upgrade(db, script_location)` is what `aidline migrate` (and, with `MIGRATE_ON_START`, a
service's start) runs; each service's `env.py` only calls `run_env()`.

Safe when several processes upgrade one schema at once (replicas starting together, two
migration Jobs): on PostgreSQL the upgrade holds a transaction-scoped advisory lock named after
the schema, so the others wait for it and then find the schema at head (nothing to do). Without
it both would run the same revision: the second fails on tables that exist, or, worse, a
revision that is not idempotent runs twice. On SQLite the schema is one file whose writers are
serialised by the file lock (`BEGIN IMMEDIATE`), the same effect.

A service migrates at start in a child process (`upgrade_apart`): Alembic, with the Mako and
Pygments it loads, is 11 MB of resident memory that a long-lived service would otherwise carry
for the one second it needs them, a tenth of its memory budget (issue 20: 120 MB). So Alembic
is imported only inside the functions that use it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from shared.db.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

# The child's inputs: in its environment, not its command line, which `ps` shows to anyone.
_URL, _SCHEMA = "AIDLINE_MIGRATE_URL", "AIDLINE_MIGRATE_SCHEMA"


def _config(script_location: Path, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


def lock_key(schema: str) -> int:
    """The advisory lock an upgrade of `schema` holds (per schema: services migrate apart)."""
    return zlib.crc32(f"aidline.migrate.{schema}".encode())


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    from alembic import command

    def _run(sync_conn: Connection) -> None:
        command.upgrade(_config(script_location, sync_conn), revision)

    async with db.engine.begin() as conn:
        await db.dialect.lock_transaction(conn, lock_key(db.schema))
        # Made under the lock too: two CREATE SCHEMA IF NOT EXISTS at once can still collide.
        await db.create_schema()
        await conn.run_sync(_run)


async def current_revision(db: Database) -> str | None:
    """The revision the schema is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    def _read(sync_conn: Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(_read)


def head_revision(script_location: Path) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(script_location)).get_current_head()


def run_env(target_metadata: Any = None) -> None:
    """Body of every service's migrations/env.py: online mode on the connection handed in."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `aidline migrate`, which supplies the connection")
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def upgrade_apart(db: Database, script_location: Path) -> None:
    """`upgrade(db, script_location)` to head in a child process (see the module's note). If it
    fails, the child's traceback goes to the log and its last line is the exception's message."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(script_location),
        env={**os.environ, _URL: db.base_url, _SCHEMA: db.schema},
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await child.communicate()
    if child.returncode != 0:
        output = errors.decode(errors="replace").strip()
        log.error("migrating schema %s failed:\n%s", db.schema, output)
        last = output.splitlines()[-1] if output else "no output"
        raise RuntimeError(f"migrating schema {db.schema} failed (exit {child.returncode}): {last}")


async def _upgrade_child(script_location: Path) -> None:
    db = Database(os.environ[_URL], os.environ[_SCHEMA], pool_size=2)
    try:
        await upgrade(db, script_location)
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(_upgrade_child(Path(sys.argv[1])))
