from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.scheduler.protocol import Scheduling

from shared.db import Database
from shared.db.migrate import upgrade
from tests.infra import (
    HOW_TO_START,
    POSTGRES_URL,
    WORKER,
    ensure_worker_database,
    require_kafka,
    unique_schema,
)

MIGRATIONS = Path(__file__).parents[1] / "services" / "request" / "migrations"
TESTS = Path(__file__).parent

# The tests that break or load what every other test shares: they stop the test broker or
# crash PostgreSQL (faults, no broker), run a three-node cluster (failover) or eight services
# (instances). `make test` with workers (deploy/local/test-suite.sh) runs them serially in a
# pytest of their own, on a broker and PostgreSQL of their own; without workers they run in
# line, as every other test.
ISOLATED = {
    "e2e/test_faults.py",
    "e2e/test_no_broker.py",
    "e2e/test_broker_failover.py",
    "e2e/test_instances.py",
}
# Folders whose tests share a fixture wider than a module: one xdist worker each, so it is
# set up once (the delivery service per backend, session-scoped; the dashboard's Chromium).
SHARED_FOLDERS = {"integration/delivery": "delivery", "browser": "browser"}
# Last in the run: helm may still be building in the background (deploy/local/test-tools.sh).
LAST = {"integration/test_helm_chart.py"}


def pytest_configure(config: pytest.Config) -> None:
    if WORKER:
        # This worker's own database; services the tests start inherit it too.
        asyncio.run(ensure_worker_database())
        os.environ["DATABASE_URL"] = POSTGRES_URL


def _relative(item: pytest.Item) -> str:
    """The test's file, relative to tests/ (as given, for one elsewhere)."""
    try:
        return item.path.relative_to(TESTS).as_posix()
    except ValueError:
        return item.path.as_posix()


def _group(relative: str) -> str:
    """The xdist group of a test file (relative to tests/): every test of a module together
    (module fixtures start services), a folder together where it shares more, and the
    end-to-end tests together (the package-scoped `stack` most of them share)."""
    for folder, group in SHARED_FOLDERS.items():
        if relative.startswith(folder + "/"):
            return group
    if relative.startswith("e2e/"):
        return "e2e"
    return relative


class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
    """`--dist loadgroup` by `_group`, from the test's node id. xdist's own loadgroup reads
    `xdist_group` marks through a suffix it writes into node ids, which pytest 9.2's node ids
    no longer take (pytest-xdist issue 1386): every test was then a group of its own, a module's
    tests ran on both workers, and each worker started the module's services (two delivery
    services planning the same shipments, a secure broker started twice on the same ports)."""

    def _split_scope(self, nodeid: str) -> str:
        return _group(nodeid.split("::", 1)[0].removeprefix("tests/"))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own
    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        relative = _relative(item)
        if relative in ISOLATED:
            item.add_marker(pytest.mark.isolated)
        if relative in LAST:  # the first to call helm may wait for its build (wait_for_tool)
            item.add_marker(pytest.mark.timeout(1500))
    items.sort(key=lambda item: _relative(item) in LAST)  # stable: the rest keep their order


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
