"""`aidline migrate` on a real PostgreSQL: two at once both succeed and leave each schema at
head once; a second run changes nothing; an unreachable database is a clear exit 1; the upgrade
itself waits for another holding the schema's lock."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from shared.cli.migrate import migrations_of, targets
from shared.db import Database
from shared.db.migrate import current_revision, head_revision, lock_key, upgrade, upgrade_apart
from tests.e2e.stack import create_database, drop_database
from tests.infra import eventually

AIDLINE = str(Path(sys.executable).parent / "aidline")


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


async def _migrate(database_url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        AIDLINE, "migrate", *args,
        env=os.environ | {"DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def _versions(database_url: str) -> dict[str, list[str]]:
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = "
            "'alembic_version'"
        )
        return {
            r["table_schema"]: [
                v["version_num"]
                for v in await conn.fetch(
                    f'SELECT version_num FROM "{r["table_schema"]}".alembic_version'
                )
            ]
            for r in schemas
        }
    finally:
        await conn.close()


def _heads() -> dict[str, str | None]:
    heads = {t.schema: head_revision(migrations_of(name)) for name, t in targets().items()}
    heads["projection_g1"] = heads["projection"]
    return heads


async def test_two_at_once_both_succeed_and_every_schema_is_at_head_once(
    database_url: str,
) -> None:
    (first, out1), (second, out2) = await asyncio.gather(
        _migrate(database_url), _migrate(database_url)
    )
    assert (first, second) == (0, 0), out1 + out2
    versions = await _versions(database_url)
    assert versions == {schema: [head] for schema, head in _heads().items()}
    for out in (out1, out2):
        assert "request: schema request at" in out and out.rstrip().endswith("done")

    # Again: nothing to do, nothing changed, and it says where each schema is.
    code, out = await _migrate(database_url, "--service", "delivery")
    assert code == 0, out
    head = _heads()["delivery"]
    assert f"delivery: schema delivery at {head}, head {head}" in out
    assert "request" not in out
    assert await _versions(database_url) == versions


async def test_an_unreachable_database_is_a_clear_failure() -> None:
    code, out = await _migrate("postgresql+asyncpg://aidline:aidline@127.0.0.1:1/aidline")
    assert code == 1
    assert "cannot reach the database at 127.0.0.1:1/aidline" in out


async def test_an_unknown_service_is_refused(database_url: str) -> None:
    code, out = await _migrate(database_url, "--service", "billing")
    assert code == 2
    assert "unknown service billing" in out
    assert await _versions(database_url) == {}


async def test_an_upgrade_waits_for_the_one_holding_the_schemas_lock(database_url: str) -> None:
    """What makes two at once safe: the second upgrade starts only when the first is done."""
    db = Database(database_url, "request", pool_size=2)
    holder = await asyncpg.connect(dsn=database_url.replace("+asyncpg", ""))
    try:
        await holder.execute("BEGIN")
        await holder.execute("SELECT pg_advisory_xact_lock($1)", lock_key("request"))
        waiting = asyncio.create_task(upgrade(db, migrations_of("request")))

        async def queued() -> bool:  # the upgrade waits on the lock, nothing migrated yet
            return bool(
                await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            )

        await eventually(queued, 30, "the upgrade to queue behind the lock")
        assert not waiting.done()
        assert "request" not in await _versions(database_url)
        await holder.execute("COMMIT")
        await asyncio.wait_for(waiting, 60)
    finally:
        await holder.close()
        await db.dispose()
    assert (await _versions(database_url))["request"] == [_heads()["request"]]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_service_migrates_at_start_in_a_child_process(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    """What MIGRATE_ON_START runs (`upgrade_apart`): the schema ends at head; a failure raises
    with the child's own error; the calling process never loads Alembic."""
    url = database_url if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path}/a.db"
    db = Database(url, "request")
    try:
        await upgrade_apart(db, migrations_of("request"))
        assert await current_revision(db) == head_revision(migrations_of("request"))
        with pytest.raises(RuntimeError, match=r"migrating schema request failed.*nowhere"):
            await upgrade_apart(db, tmp_path / "nowhere")
    finally:
        await db.dispose()
    probe = "import sys, shared.runtime; print('alembic' in sys.modules)"
    loaded = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await loaded.communicate()
    assert out.decode().strip() == "False"
