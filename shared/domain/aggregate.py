"""Aggregates change state only by applying their own events (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from shared.domain.events import DomainEvent


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
