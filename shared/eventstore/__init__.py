"""The one way every service stores events: append-only log, aggregates, catalogue, tracking."""

from shared.eventstore.aggregate import Aggregate, Repository
from shared.eventstore.events import (
    DomainEvent,
    EventCatalogue,
    Metadata,
    NewEvent,
    StoredEvent,
    UnknownEventType,
)
from shared.eventstore.store import ConcurrencyError, EventStore, Transaction

__all__ = [
    "Aggregate",
    "ConcurrencyError",
    "DomainEvent",
    "EventCatalogue",
    "EventStore",
    "Metadata",
    "NewEvent",
    "Repository",
    "StoredEvent",
    "Transaction",
    "UnknownEventType",
]
