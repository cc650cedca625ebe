"""A consumer's tracking record: which events it has applied (or dead-lettered) and each
partition's next offset, kept in the consumer's own database and written in the transaction of
its effects — so the database, not Kafka, is the truth, and a redelivered event has no second
effect. One implementation per backend (`postgres`, `sqlite`) holds the tuned look-up.

A batch handler that keeps one row per event it applies (the projection's audit trail, with the
event id in a unique column) can name that column as `recorded_by`: it then counts as the record
of applied events, and tracking rows of the consumer's own are written only for the events the
handler did not apply (dead-lettered ones).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database
from shared.db.rows import upsert_all
from shared.eventstore.tables import consumer_offsets, processed_events

_OFFSET_KEY = ("consumer", "topic", "partition")


class Tracker(ABC):
    def __init__(
        self, db: Database, consumer: str, recorded_by: sa.Column[uuid.UUID] | None = None
    ) -> None:
        self.db = db
        self.consumer = consumer
        self.recorded_by = recorded_by

    @abstractmethod
    async def applied(
        self, conn: AsyncConnection, ids: Collection[uuid.UUID], *, handler_record: bool = True
    ) -> set[uuid.UUID]:
        """Which of `ids` this consumer has applied or dead-lettered; without `handler_record`,
        only those its own tracking rows name. The first statement of a consumer's transaction:
        it begins the transaction on the server (through SQLAlchemy), so that the statements a
        handler sends to the driver directly run in it."""

    async def claim(self, conn: AsyncConnection, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """For a consumer without `recorded_by`: record `ids` as applied in the caller's
        transaction, before they are, and return those not recorded before (the others were
        applied or dead-lettered). Like `applied`, the first statement of a consumer's
        transaction."""
        done = await self.applied(conn, ids)
        new = set(ids) - done
        await self.record(conn, list(new))
        return new

    async def record(self, conn: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
        """Record `ids` as applied, in the caller's transaction."""
        now = datetime.now(UTC)
        await self.db.dialect.insert_rows(
            conn,
            processed_events,
            ("consumer", "event_id", "processed_at"),
            [(self.consumer, event_id, now) for event_id in ids],
        )

    async def save_offsets(
        self, conn: AsyncConnection, next_offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Store each partition's next offset in the caller's transaction: one upsert, its
        statement built once (the update built anew for every batch was 7 % of py-spy's
        samples of a consumer applying one event per batch)."""
        now = datetime.now(UTC)
        rows = [
            {"consumer": self.consumer, "topic": tp.topic, "partition": tp.partition,
             "next_offset": offset, "updated_at": now}
            for tp, offset in next_offsets.items()
        ]  # fmt: skip
        await upsert_all(conn, consumer_offsets, _OFFSET_KEY, rows)

    async def stored_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async with self.db.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(consumer_offsets).where(consumer_offsets.c.consumer == self.consumer)
            )
            stored = {TopicPartition(r.topic, r.partition): int(r.next_offset) for r in rows}
        return {tp: stored[tp] for tp in partitions if tp in stored}


def tracker_for(
    db: Database, consumer: str, recorded_by: sa.Column[uuid.UUID] | None = None
) -> Tracker:
    """The tracker of `db`'s backend."""
    from shared.messaging.tracking.postgres import PostgresTracker
    from shared.messaging.tracking.sqlite import SqliteTracker

    kinds: dict[str, type[Tracker]] = {"postgresql": PostgresTracker, "sqlite": SqliteTracker}
    return kinds[db.dialect.name](db, consumer, recorded_by)
