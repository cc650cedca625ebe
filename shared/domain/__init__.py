"""The pure core every service's domain builds on: events, aggregates, domain errors (no I/O)."""

from shared.domain.aggregate import Aggregate
from shared.domain.errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
    VersionMismatch,
)
from shared.domain.events import (
    DomainEvent,
    EventRegistry,
    Metadata,
    NewEvent,
    StoredEvent,
    UnknownEventType,
)

__all__ = [
    "Aggregate",
    "DomainError",
    "DomainEvent",
    "EventRegistry",
    "Forbidden",
    "InvalidInput",
    "Metadata",
    "NewEvent",
    "NotFound",
    "StoredEvent",
    "TooLarge",
    "UnknownEventType",
    "VersionMismatch",
]
