"""The event log on SQLite, the embedded single-process default (the interface:
`shared.eventstore.log`). Writers are serialised by the database lock (`BEGIN IMMEDIATE`), which
orders positions as commits; the one relay of the one process is always the leader, woken by
the store's in-process signal."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.rows import aware
from shared.eventstore.log import EventLog, EventRow, ExtraRow, OutboxRow
from shared.eventstore.tables import events, relay_checkpoints


class SqliteEventLog(EventLog):
    @contextlib.asynccontextmanager
    async def append_connection(self) -> AsyncIterator[tuple[AsyncConnection, bool]]:
        async with self.db.engine.begin() as conn:
            yield conn, False

    async def insert(
        self,
        conn: AsyncConnection,
        new: Sequence[EventRow],
        rows: Sequence[ExtraRow],
        *,
        direct: bool,
    ) -> dict[uuid.UUID, int]:
        for table, values in rows:
            await conn.execute(table.insert(), [values])
        if not new:
            return {}
        result = await conn.execute(
            events.insert().returning(events.c.event_id, events.c.position), list(new)
        )
        return {row.event_id: row.position for row in result}

    def payload_text(self, data: dict[str, Any]) -> str:
        # SQLAlchemy's JSON type stores json.dumps text: non-ASCII characters \u-escaped.
        return json.dumps(data)

    def is_version_conflict(self, message: str) -> bool:
        return "events.stream_id, events.stream_version" in message

    async def read_outbox(
        self, conn: AsyncConnection, position: int, limit: int
    ) -> list[OutboxRow]:
        meta = events.c.meta
        query = (
            sa.select(
                *(c for c in events.c if c.name not in ("data", "meta")),
                sa.cast(events.c.data, sa.Text).label("payload"),
                meta["actor"].as_string().label("actor"),
                meta["correlation_id"].as_string().label("correlation_id"),
                meta["causation_id"].as_string().label("causation_id"),
                meta["occurred_at"].as_string().label("occurred_at"),
            )
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(limit)
        )
        return [
            OutboxRow(
                row.position,
                row.stream_id,
                row.stream_version,
                row.event_id,
                row.event_type,
                row.schema_version,
                aware(row.recorded_at),
                row.payload,
                row.actor or "system",
                row.correlation_id,
                row.causation_id,
                row.occurred_at,
            )
            for row in await conn.execute(query)
        ]

    async def outbox_state(
        self, conn: AsyncConnection, name: str, published: int
    ) -> tuple[int, int, datetime | None]:
        checkpoint = await conn.scalar(
            sa.select(relay_checkpoints.c.position).where(relay_checkpoints.c.name == name)
        )
        published = max(published, int(checkpoint or 0))
        head = await conn.scalar(sa.select(sa.func.max(events.c.position)))
        oldest = await conn.scalar(
            sa.select(events.c.recorded_at)
            .where(events.c.position > published)
            .order_by(events.c.position)
            .limit(1)
        )
        return published, int(head or 0), aware(oldest)

    @contextlib.asynccontextmanager
    async def leadership(
        self, name: str, retry_seconds: float, on_append: Callable[[], None]
    ) -> AsyncIterator[AsyncConnection | None]:
        yield None  # one process owns the file; its appends wake the relay in-process

    async def save_checkpoint(
        self, leader: AsyncConnection | None, name: str, position: int, at: datetime
    ) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                relay_checkpoints.update()
                .where(relay_checkpoints.c.name == name)
                .values(position=position, updated_at=at)
            )
