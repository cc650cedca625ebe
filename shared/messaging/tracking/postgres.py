"""The tracking record's look-up and claim on PostgreSQL: one prepared statement each, whatever
the batch size (see `shared.messaging.tracking`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.messaging.tracking import Tracker

_CLAIM_SQL = (
    "INSERT INTO processed_events (consumer, event_id, processed_at)"
    " SELECT $1, id, $3 FROM unnest($2::uuid[]) AS id"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


class PostgresTracker(Tracker):
    def __init__(
        self, db: Database, consumer: str, recorded_by: sa.Column[uuid.UUID] | None = None
    ) -> None:
        super().__init__(db, consumer, recorded_by)
        self._own_sql = self._all_sql = (
            "SELECT event_id FROM processed_events WHERE consumer = $1"
            " AND event_id = ANY($2::uuid[])"
        )
        if recorded_by is not None:
            table, column = recorded_by.table.name, recorded_by.name
            self._all_sql += (
                f' UNION ALL SELECT "{column}" FROM "{table}" WHERE "{column}" = ANY($2::uuid[])'
            )

    async def claim(self, conn: AsyncConnection, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        # One statement where a look-up and an insert took two (a round trip less per batch).
        # A claim another transaction holds is waited for: it commits (and the ids are not
        # new) or rolls back (and they are).
        if not ids:
            return set()
        result = await conn.exec_driver_sql(
            _CLAIM_SQL, (self.consumer, list(ids), datetime.now(UTC))
        )
        return {row[0] for row in result}

    async def applied(
        self, conn: AsyncConnection, ids: Collection[uuid.UUID], *, handler_record: bool = True
    ) -> set[uuid.UUID]:
        if not ids:
            return set()
        sql = self._all_sql if handler_record else self._own_sql
        # SQLAlchemy's, not the driver's: it begins the transaction (see `Tracker.applied`).
        result = await conn.exec_driver_sql(sql, (self.consumer, list(ids)))
        return {row[0] for row in result}
