"""The tracking record's look-up on SQLite (see `shared.messaging.tracking`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.tables import processed_events
from shared.messaging.tracking import Tracker


class SqliteTracker(Tracker):
    async def applied(
        self, conn: AsyncConnection, ids: Collection[uuid.UUID], *, handler_record: bool = True
    ) -> set[uuid.UUID]:
        if not ids:
            return set()
        query: sa.Select[tuple[uuid.UUID]] | sa.CompoundSelect[tuple[uuid.UUID]] = sa.select(
            processed_events.c.event_id
        ).where(processed_events.c.consumer == self.consumer, processed_events.c.event_id.in_(ids))
        if self.recorded_by is not None and handler_record:
            column = self.recorded_by
            query = sa.union_all(query, sa.select(column).where(column.in_(ids)))
        return {row[0] for row in await conn.execute(query)}
