"""A rebuild's generation on PostgreSQL: unlogged (but its history tables), with only the indexes
the consumer needs, until it is finished (logged, fully indexed); one a database crash emptied
is never finished. Read models from before a revision are upgraded in place."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from services.projection.consumers import ROW_TABLES, consumers
from services.projection.generations import LOGGED_WHILE_BUILDING, MIGRATIONS, Generation
from services.projection.settings import ProjectionSettings
from shared.db import Database
from shared.db.migrate import upgrade
from tests.infra import POSTGRES_URL


def _revision(name: str) -> ModuleType:
    """A migration module (their file names are not importable names)."""
    spec = importlib.util.spec_from_file_location(name, MIGRATIONS / "versions" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R0007 = _revision("0007_decisions")


@pytest.fixture
async def building(kafka: str) -> AsyncIterator[Generation]:
    settings = ProjectionSettings(
        database_url=POSTGRES_URL,
        kafka_bootstrap_servers=kafka,
        projection_schema=f"gen_{uuid.uuid4().hex[:8]}",
    )
    (spec,) = consumers(settings)
    generation = Generation(2, settings, spec, lambda *_: None, building=True)
    await generation.prepare()
    try:
        yield generation
    finally:
        await generation.drop()


async def _persistence(generation: Generation, *, logged: bool | None = None) -> set[str]:
    """relpersistence of the generation's tables: 'u' unlogged, 'p' logged; `logged` True: of
    the tables written durably while building (LOGGED_WHILE_BUILDING) only, False: of the
    others only."""
    async with generation.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.relname, c.relpersistence::text FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'"
            ),
            {"schema": generation.schema},
        )
        return {
            persistence
            for name, persistence in rows
            if logged is None or (name in LOGGED_WHILE_BUILDING) == logged
        }


async def _indexes(generation: Generation) -> set[str]:
    async with generation.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = :schema"),
            {"schema": generation.schema},
        )
        return {r[0] for r in rows}


DEFERRED = {i.name for table in t.metadata.sorted_tables for i in table.indexes if not i.unique}


async def test_unlogged_while_building_then_logged_and_indexed(building: Generation) -> None:
    assert await _persistence(building, logged=False) == {"u"}
    # (the history tables are written to the WAL as they fill: LOGGED_WHILE_BUILDING)
    assert await _persistence(building, logged=True) == {"p"}
    assert not DEFERRED & await _indexes(building), "secondary indexes wait for the finish"
    assert "audit_event_id_key" in await _indexes(building), "the tracking record's index stays"
    assert await building.intact()
    await building.finish()
    assert await _persistence(building) == {"p"}
    assert await _indexes(building) >= DEFERRED
    assert await building.intact()


async def test_a_generation_emptied_by_a_crash_is_never_finished(building: Generation) -> None:
    async with building.db.engine.begin() as conn:
        # What crash recovery does to every unlogged table.
        await conn.execute(sa.text("TRUNCATE building_marker"))
    assert not await building.intact()
    with pytest.raises(RuntimeError, match="database crash"):
        await building.finish()


async def test_the_tables_columns_are_in_their_rows_field_order(building: Generation) -> None:
    """The writer loads rows with SELECT * into the row dataclasses and sends them as tuples of
    the table's row type: both rely on the migrated tables' column order."""
    async with building.db.engine.connect() as conn:
        await _columns_in_field_order(conn)


async def _columns_in_field_order(conn: AsyncConnection) -> None:
    for kind, table in ROW_TABLES.items():
        result = await conn.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table.name},
        )
        assert list(result.scalars()) == [f.name for f in fields(kind)], table.name


async def test_an_audit_trail_from_before_0003_keeps_its_data_as_json() -> None:
    db = Database(POSTGRES_URL, f"mig_{uuid.uuid4().hex[:8]}")
    try:
        await upgrade(db, MIGRATIONS, "0002")
        async with db.engine.begin() as conn:  # as 0002 made it before the audit kept JSON
            await conn.execute(sa.text("ALTER TABLE audit ALTER COLUMN data TYPE jsonb"))
            await conn.execute(
                t.audit.insert().values(
                    event_id=uuid.uuid4(), stream_id="R-1", event_type="requirement.endorsed",
                    source="/aidline/request", actor="forum-1", time=datetime.now(UTC),
                    stream_version=2, schema_version=1, topic="aidline.requests", partition=0,
                    offset=7, data={"priority": 1, "decision_id": "D-1"},
                )
            )  # fmt: skip
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            kind = await conn.scalar(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                    " current_schema() AND table_name = 'audit' AND column_name = 'data'"
                )
            )
            data = await conn.scalar(sa.select(t.audit.c.data))
        assert (kind, data) == ("json", {"priority": 1, "decision_id": "D-1"})
    finally:
        await db.drop_schema()
        await db.dispose()


async def test_read_models_from_before_0007_gain_the_decisions_in_column_order() -> None:
    """A schema as 0006 left it (no decisions, no lineage columns) is upgraded in place: the new
    columns come last, in their rows' field order, and a row written before keeps its values."""
    db = Database(POSTGRES_URL, f"mig_{uuid.uuid4().hex[:8]}")
    try:
        await upgrade(db, MIGRATIONS, "0006")
        async with db.engine.begin() as conn:  # as 0002 made them before 0007
            await conn.execute(sa.text("DROP TABLE decisions"))
            for table, names in R0007.COLUMNS.items():
                for name in names:
                    await conn.execute(sa.text(f'ALTER TABLE "{table.name}" DROP COLUMN "{name}"'))
            await conn.execute(
                sa.text(
                    "INSERT INTO pledges (pledge_id, donor, item_code, unit, source,"
                    " announced_quantity, quantity, status) VALUES"
                    " ('P-1', 'DE', 'ART-155-HE', 'rounds', 'stock', 5, 5, 'confirmed')"
                )
            )
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            await _columns_in_field_order(conn)
            pledge = (await conn.execute(sa.select(t.pledges))).one()
            indexes = set(
                await conn.scalars(
                    sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
                )
            )
        assert (pledge.quantity, pledge.decision_id) == (5, None)
        assert {name for names in R0007.INDEXES.values() for name in names} <= indexes
    finally:
        await db.drop_schema()
        await db.dispose()


async def test_sqlite_read_models_from_before_0007_gain_the_decisions(tmp_path: Path) -> None:
    """`make run`'s SQLite files are upgraded in place too (the SQLite writer names its
    columns, so their order does not matter there)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/projection.db", "projection_g1")
    try:
        await upgrade(db, MIGRATIONS, "0006")
        async with db.engine.begin() as conn:  # as 0002 made them before 0007
            for index in R0007.INDEXES.values():
                for name in index:
                    await conn.execute(sa.text(f'DROP INDEX "{name}"'))
            await conn.execute(sa.text("DROP TABLE decisions"))
            for table, names in R0007.COLUMNS.items():
                for name in names:
                    await conn.execute(sa.text(f'ALTER TABLE "{table.name}" DROP COLUMN "{name}"'))
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            for kind, table in ROW_TABLES.items():
                found = await conn.execute(sa.text(f'PRAGMA table_info("{table.name}")'))
                assert {row[1] for row in found} == {f.name for f in fields(kind)}, table.name
            indexes = set(
                await conn.scalars(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'"))
            )
        assert {name for names in R0007.INDEXES.values() for name in names} <= indexes
    finally:
        await db.drop_schema()
