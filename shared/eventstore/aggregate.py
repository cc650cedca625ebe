"""Aggregates change only by applying their own events; repositories load and save them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Self, TypeVar

from shared.eventstore.events import DomainEvent, EventCatalogue, Metadata
from shared.eventstore.store import Transaction


class Aggregate:
    """Base for event-sourced aggregates. Subclasses implement `apply` (pure state change) and
    raise new events with `_record`, which applies them and keeps them for saving."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []

    def apply(self, event: DomainEvent) -> None:
        raise NotImplementedError

    def _record(self, event: DomainEvent) -> None:
        self.apply(event)
        self.version += 1
        self.pending.append(event)

    @property
    def persisted_version(self) -> int:
        return self.version - len(self.pending)

    @classmethod
    def rehydrate(cls, aggregate_id: str, history: Iterable[DomainEvent]) -> Self:
        aggregate = cls(aggregate_id)
        for event in history:
            aggregate.apply(event)
            aggregate.version += 1
        return aggregate


A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    """Loads an aggregate from its stream and queues its new events in a transaction."""

    def __init__(self, cls: type[A], catalogue: EventCatalogue) -> None:
        self.cls = cls
        self.catalogue = catalogue

    async def get(self, tx: Transaction, aggregate_id: str) -> A | None:
        stored = await tx.store.read_stream(tx.conn, aggregate_id)
        if not stored:
            return None
        return self.cls.rehydrate(aggregate_id, self.catalogue.decode_stored(stored))

    def save(self, tx: Transaction, aggregate: A, meta: Metadata) -> None:
        new_events = [self.catalogue.encode(event, meta) for event in aggregate.pending]
        tx.append(aggregate.id, aggregate.persisted_version, new_events)
        aggregate.pending = []
