"""The event log's storage interface: what the event store and the relay need from a backend.

One implementation per backend (`shared.eventstore.postgres`, `shared.eventstore.sqlite`) holds
all of its tuned SQL; `EventStore` and `Relay` never ask which backend they are on. The contract
test suite (tests/integration/test_event_log_contract.py) runs the same tests against both.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database


class OutboxRow(NamedTuple):
    """A stored event on its way to Kafka: its data as the JSON text the store holds, its
    metadata as the fields the envelope carries (a tuple: the relay builds thousands a second).
    """

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    recorded_at: datetime
    payload: str
    actor: str
    correlation_id: str | None
    causation_id: str | None
    # Business time as the store holds it (ISO text; None: occurred when recorded).
    occurred_at: str | None = None


# An event row as written: the `events` table's columns but `position`.
EventRow = dict[str, Any]
# A row of another table written with the events: (table, values).
ExtraRow = tuple[sa.Table, dict[str, Any]]


class EventLog(ABC):
    """One backend's way to append, read and publish a service's events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- appending ------------------------------------------------------------------------

    @abstractmethod
    def append_connection(self) -> AbstractAsyncContextManager[tuple[AsyncConnection, bool]]:
        """The connection of a unit of work that reads, then appends only, and whether it is
        outside a transaction (then everything it writes goes in one statement at the end,
        committing as it runs: `insert(..., direct=True)`)."""

    @abstractmethod
    async def insert(
        self,
        conn: AsyncConnection,
        new: Sequence[EventRow],
        rows: Sequence[ExtraRow],
        *,
        direct: bool,
    ) -> dict[uuid.UUID, int]:
        """Write `new` events and `rows` in commit order; returns each event's position.
        A second writer at a stream version raises `IntegrityError` (see `is_version_conflict`).
        `direct`: `conn` is outside a transaction (from `append_connection`); where the backend
        allows, the writes go with other units' in one statement (`group_commit`)."""

    @abstractmethod
    def payload_text(self, data: dict[str, Any]) -> str:
        """`data` as this backend will give it back to the relay (`OutboxRow.payload`): what
        the store measures against Kafka's limit before it writes an event."""

    @abstractmethod
    def is_version_conflict(self, message: str) -> bool:
        """Whether an integrity error's (lower-cased) message is the stream-version constraint."""

    # -- publishing -----------------------------------------------------------------------

    @abstractmethod
    async def read_outbox(
        self, conn: AsyncConnection, position: int, limit: int
    ) -> list[OutboxRow]:
        """Events after `position`, in order, with nothing decoded in Python."""

    @abstractmethod
    async def outbox_state(
        self, conn: AsyncConnection, name: str, published: int
    ) -> tuple[int, int, datetime | None]:
        """(published, head, oldest): what publisher `name` has published (its checkpoint, or
        `published` if further), the last position stored, and when the first event not
        published yet was recorded (None: nothing waits). Cheap: it reads two index ends."""

    @abstractmethod
    def leadership(
        self, name: str, retry_seconds: float, on_append: Callable[[], None]
    ) -> AbstractAsyncContextManager[AsyncConnection | None]:
        """Be the one publisher `name` of this store: waits until no other process is, yields
        the leader's own connection (None where one process owns the database) and calls
        `on_append` whenever another process appends."""

    @abstractmethod
    async def save_checkpoint(
        self, leader: AsyncConnection | None, name: str, position: int, at: datetime
    ) -> None:
        """Save publisher `name`'s checkpoint (its row exists)."""
