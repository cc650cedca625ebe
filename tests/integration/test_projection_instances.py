"""Several projection instances on one PostgreSQL database (consumers off: what they share is
the database): a generation swapped in by one is taken by the other; a generation another live
instance builds is left alone at start, one whose builder died is abandoned; a rebuild is
refused while another instance builds; one instance's commits wake the other's waiters; audit
rows are numbered in commit order across writers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from services.projection import tables as t
from services.projection.consumers import consumers
from services.projection.generations import MIGRATIONS, Generation, ReadModels
from services.projection.rebuild import Rebuilder
from services.projection.settings import ProjectionSettings
from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import DomainError
from shared.eventstore import EventStore
from tests.infra import POSTGRES_URL, eventually, unique_schema


@pytest.fixture
async def settings() -> AsyncIterator[ProjectionSettings]:
    settings = ProjectionSettings(
        database_url=POSTGRES_URL, projection_schema=unique_schema(), consumers_enabled=False
    )
    base = Database(settings.database_url, settings.projection_schema)
    await upgrade(base, MIGRATIONS)
    try:
        yield settings
    finally:
        async with base.engine.begin() as conn:
            await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {base.schema}_g1 CASCADE"))
            await conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {base.schema}_g2 CASCADE"))
        await base.drop_schema()
        await base.dispose()


@contextlib.asynccontextmanager
async def instance(settings: ProjectionSettings) -> AsyncIterator[ReadModels]:
    """One instance's read models, started, following the others' commits and swaps."""
    (spec,) = consumers(settings)
    base = Database(settings.database_url, settings.projection_schema)
    models = ReadModels(settings, base, spec)
    await models.start()
    following = asyncio.create_task(models.follow_commits())
    try:
        yield models
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await models.stop()
        await base.dispose()


async def _reserve(models: ReadModels, number: int) -> None:
    async with models.base.engine.begin() as conn:
        await conn.execute(
            t.generations.insert().values(
                number=number,
                schema_name=f"{models.base.schema}_g{number}",
                state="building",
                created_at=datetime.now(UTC),
            )
        )


async def _states(models: ReadModels) -> dict[int, str]:
    async with models.base.engine.connect() as conn:
        return {r.number: r.state for r in await conn.execute(sa.select(t.generations))}


async def test_a_generation_swapped_in_by_one_instance_is_taken_by_the_other(
    settings: ProjectionSettings,
) -> None:
    async with instance(settings) as one, instance(settings) as other:
        switched: list[int] = []
        other.on_switch.append(lambda new, _old: switched.append(new.number))
        await _reserve(one, 2)
        new = one.generation(2)
        await new.prepare()
        old = await one.swap(new)
        assert old.number == 1 and one.current.number == 2

        async def taken() -> bool:
            return other.current.number == 2

        await eventually(taken, 10, "the other instance to take generation 2")
        assert switched == [2]  # its live stream and /readyz follow the new generation
        await old.drop()


async def test_a_generation_a_live_instance_builds_is_left_alone_at_start(
    settings: ProjectionSettings,
) -> None:
    async with instance(settings) as builder:
        await _reserve(builder, 2)
        base = builder.base
        async with base.dialect.hold_lock(base.engine, builder.building_lock(2)):
            async with instance(settings):
                assert (await _states(builder))[2] == "building"
            rebuilder = Rebuilder(builder)
            async with EventStore(base).transaction() as tx:
                with pytest.raises(DomainError, match="being built by another instance"):
                    await rebuilder.reserve(tx)
        # Its builder gone (the lock goes with its connection), the next start abandons it.
        async with instance(settings):
            assert (await _states(builder))[2] == "failed"


async def test_one_instances_commit_wakes_the_others_waiters(settings: ProjectionSettings) -> None:
    async with instance(settings) as one, instance(settings) as other:
        generation: Generation = one.current

        async def listening() -> bool:  # the other's listener is up once it has woken once
            return bool(
                await _fetchval(
                    settings,
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%' AND datname = current_database()",
                )
                >= 4  # each instance: its swaps and its generation's commits
            )

        await eventually(listening, 10, "both instances listening")
        woken = other.commits.next()
        async with generation.db.engine.begin() as conn:
            await one.sink.commit_in_order(conn, generation.schema)
            assert not woken.is_set()  # announced at the commit, not before
        await asyncio.wait_for(woken.wait(), 5)


async def test_audit_rows_are_numbered_in_commit_order_across_writers(
    settings: ProjectionSettings,
) -> None:
    async with instance(settings) as one:
        generation = one.current
        first = await generation.db.engine.connect()
        await first.begin()
        try:
            await one.sink.commit_in_order(first, generation.schema)
            second = asyncio.create_task(_commit_in_order(one, generation))

            async def waiting() -> bool:
                return bool(
                    await _fetchval(
                        settings,
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())",
                    )
                )

            await eventually(waiting, 10, "the second writer to wait for the first's commit")
            assert not second.done()
            await first.commit()
            await asyncio.wait_for(second, 10)
        finally:
            await first.close()


async def _commit_in_order(models: ReadModels, generation: Generation) -> None:
    async with generation.db.engine.begin() as conn:
        await models.sink.commit_in_order(conn, generation.schema)


async def _fetchval(settings: ProjectionSettings, sql: str) -> Any:
    conn = await asyncpg.connect(dsn=settings.database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()
