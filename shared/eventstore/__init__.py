"""The one way every service stores events: the append-only log (also the outbox), repositories."""

from shared.eventstore.repository import Repository
from shared.eventstore.store import ConcurrencyError, EventStore, Transaction

__all__ = ["ConcurrencyError", "EventStore", "Repository", "Transaction"]
