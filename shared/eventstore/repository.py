"""Repositories load aggregates from their streams and queue their new events in a transaction."""

from __future__ import annotations

from typing import Generic, TypeVar

from shared.domain.aggregate import Aggregate
from shared.domain.events import EventRegistry, Metadata
from shared.eventstore.store import Transaction

A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    """Loads an aggregate from its stream and queues its new events in a transaction."""

    def __init__(self, cls: type[A], registry: EventRegistry) -> None:
        self.cls = cls
        self.registry = registry

    async def get(self, tx: Transaction, aggregate_id: str) -> A | None:
        stored = await tx.store.read_stream(tx.conn, aggregate_id)
        if not stored:
            return None
        return self.cls.rehydrate(aggregate_id, self.registry.decode_stored(stored))

    def save(self, tx: Transaction, aggregate: A, meta: Metadata) -> None:
        new_events = [self.registry.encode(event, meta) for event in aggregate.pending]
        tx.append(aggregate.id, aggregate.persisted_version, new_events)
        aggregate.pending = []
