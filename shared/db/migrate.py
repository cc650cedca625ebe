"""Alembic, run from code: each service keeps its revisions in `services/<name>/migrations`.

`upgrade(db, script_location)` is the pre-start step; each service's `env.py` only calls
`run_env()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy.engine import Connection

from shared.db.engine import Database


def _config(script_location: Path, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    await db.create_schema()

    def _run(sync_conn: Connection) -> None:
        command.upgrade(_config(script_location, sync_conn), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(_run)


def run_env(target_metadata: Any = None) -> None:
    """Body of every service's migrations/env.py: online mode on the connection handed in."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `aidline migrate`, which supplies the connection")
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
