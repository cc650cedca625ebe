"""Revision 0006 rewrites the shipment views stored before it: the key `id` becomes
`shipment_id` (docs/DESIGN.md §4, one id name), on both backends; a view written after it is
left as it is, and the downgrade gives the old key back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from services.delivery.app import MIGRATIONS
from services.delivery.tables import shipments
from shared.db import Database
from shared.db.migrate import _config, upgrade
from tests.infra import POSTGRES_URL, unique_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path}/d.db" if request.param == "sqlite" else POSTGRES_URL
    database = Database(url, unique_schema())
    await upgrade(database, MIGRATIONS, "0005")
    yield database
    await database.drop_schema()
    await database.dispose()


def _row(shipment_id: str, view: dict[str, Any]) -> dict[str, Any]:
    return {
        "shipment_id": shipment_id,
        "status": "planned",
        "hub": "PL-RZE",
        "donor": "PL",
        "quantity": 5,
        "version": 1,
        "view": view,
        "updated_at": datetime.now(UTC),
    }


async def _views(db: Database) -> dict[str, dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(sa.select(shipments.c.shipment_id, shipments.c.view))
        return {row.shipment_id: dict(row.view) for row in rows}


async def test_stored_views_are_rekeyed_and_back(db: Database) -> None:
    old = {"id": "SHP-1", "version": 1, "status": "planned", "hub": "PL-RZE", "serials": ["a"]}
    new = {"shipment_id": "SHP-2", "version": 1, "status": "planned", "hub": "PL-RZE"}
    async with db.engine.begin() as conn:
        await conn.execute(shipments.insert(), [_row("SHP-1", old), _row("SHP-2", new)])

    await upgrade(db, MIGRATIONS, "0006")
    views = await _views(db)
    assert views["SHP-1"] == {k: v for k, v in old.items() if k != "id"} | {"shipment_id": "SHP-1"}
    assert "id" not in views["SHP-1"]
    assert views["SHP-2"] == new

    def down(sync: sa.Connection) -> None:
        command.downgrade(_config(MIGRATIONS, sync), "0005")

    async with db.engine.begin() as conn:
        await conn.run_sync(down)
    back = await _views(db)
    assert back["SHP-1"] == old
    assert back["SHP-2"] == {k: v for k, v in new.items() if k != "shipment_id"} | {"id": "SHP-2"}
