"""Row helpers for the services' own state tables, portable across PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Update the row with `key`, or insert it. Consumers call it inside their transaction,
    where only one writer owns a partition, so the update-then-insert race cannot happen."""
    where = sa.and_(*(table.c[name] == value for name, value in key.items()))
    result = await conn.execute(table.update().where(where).values(**values))
    if result.rowcount == 0:
        await conn.execute(table.insert().values(**key, **values))


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives stored times back without their zone; they were written in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
