from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from shared.db import Database
from shared.db.migrate import upgrade
from tests.infra import HOW_TO_START, POSTGRES_URL, require_kafka, unique_schema

MIGRATIONS = Path(__file__).parents[1] / "services" / "request" / "migrations"


@pytest.fixture(scope="session")
async def kafka() -> str:
    return await require_kafka()


async def _database(url: str) -> Database:
    db = Database(url, unique_schema())
    try:
        await upgrade(db, MIGRATIONS)
    except (OSError, DBAPIError) as exc:
        await db.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({exc!r}); {HOW_TO_START}", pytrace=False
        )
    return db


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty event store schema on each backend."""
    url = f"sqlite+aiosqlite:///{tmp_path}/store.db" if request.param == "sqlite" else POSTGRES_URL
    database = await _database(url)
    yield database
    await database.drop_schema()
    await database.dispose()


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    """A migrated, empty schema on PostgreSQL only (for what only PostgreSQL has)."""
    database = await _database(POSTGRES_URL)
    yield database
    await database.drop_schema()
    await database.dispose()
