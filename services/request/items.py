"""The catalogue as this service knows it: the base items shipped with the project plus the
items admins added (kept in `catalogue_items`, written with their `catalogue.item_added`)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.request.tables import catalogue_items
from shared.catalogue import EumClass, Item, base_items


def _item(row: sa.Row[tuple[object, ...]]) -> Item:
    eum: EumClass = row.eum_class
    return Item(
        code=row.code,
        name=row.name,
        capability=row.capability,
        unit=row.unit,
        eum_class=eum,
        substitutes=tuple(row.substitutes),
    )


async def added_items(conn: AsyncConnection) -> dict[str, Item]:
    rows = await conn.execute(sa.select(catalogue_items).order_by(catalogue_items.c.code))
    return {row.code: _item(row) for row in rows}


async def all_items(conn: AsyncConnection) -> dict[str, Item]:
    return base_items() | await added_items(conn)


async def find_item(conn: AsyncConnection, code: str) -> Item | None:
    base = base_items().get(code)
    if base is not None:
        return base
    row = (
        await conn.execute(sa.select(catalogue_items).where(catalogue_items.c.code == code))
    ).first()
    return None if row is None else _item(row)


async def remember_item(conn: AsyncConnection, item: Item) -> None:
    await conn.execute(
        catalogue_items.insert().values(
            code=item.code,
            name=item.name,
            capability=item.capability,
            unit=item.unit,
            eum_class=item.eum_class,
            substitutes=list(item.substitutes),
            added_at=datetime.now(UTC),
        )
    )
