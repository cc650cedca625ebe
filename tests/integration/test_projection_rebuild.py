"""Reserving a rebuild (SQLite, no broker): refused while one runs; started only once the
command that reserved it has committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.projection import tables as t
from services.projection.consumers import consumers
from services.projection.generations import MIGRATIONS, ReadModels
from services.projection.rebuild import Rebuilder, RebuildProgress
from services.projection.settings import ProjectionSettings
from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import DomainError
from shared.eventstore import EventStore
from shared.web.problems import problem_for


@pytest.fixture
async def rebuilder(tmp_path: Path) -> AsyncIterator[Rebuilder]:
    settings = ProjectionSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/aidline.db")
    base = Database(settings.database_url, settings.projection_schema)
    await upgrade(base, MIGRATIONS)
    (spec,) = consumers(settings)
    try:
        yield Rebuilder(ReadModels(settings, base, spec))
    finally:
        await base.dispose()


async def test_a_rebuild_is_refused_while_one_runs(rebuilder: Rebuilder) -> None:
    rebuilder.progress = RebuildProgress(state="building", generation=2)
    async with EventStore(rebuilder.models.base).transaction() as tx:
        with pytest.raises(DomainError, match="Generation 2 is being built") as refused:
            await rebuilder.reserve(tx)
    problem = problem_for(refused.value)
    assert (problem.status, problem.kind) == (409, "rebuild-running")


async def test_a_reservation_rolled_back_starts_nothing(rebuilder: Rebuilder) -> None:
    before = rebuilder.progress
    with pytest.raises(RuntimeError, match="after its handler"):
        async with EventStore(rebuilder.models.base).transaction() as tx:
            assert await rebuilder.reserve(tx) == 1
            assert rebuilder.progress.state == "building"
            raise RuntimeError("the command fails after its handler")
    assert rebuilder.progress is before, "the reservation is released"
    assert rebuilder.building is None
    async with rebuilder.models.base.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(t.generations)) == 0
