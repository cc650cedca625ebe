"""Domain events, their explicit names and versions, and the registry that encodes/decodes them.

A domain event is a frozen dataclass with two class attributes: `TYPE` (the name on the wire,
never a Python path) and `VERSION` (its schema version). Stored or received data of an older
version is upcast step by step (v1 -> v2 -> ...) before it is decoded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar, TypeVar

from pydantic import TypeAdapter


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


E = TypeVar("E", bound=type[DomainEvent])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Metadata:
    """Who caused an event and in answer to what (ce_actor, ce_correlationid, ce_causationid),
    and when its fact happened in the world (ce_occurredat: business time).

    `occurred_at` None means "when it was recorded" (the command's or follow-up's own time,
    and every event stored before business time existed): the store then keeps no value, and
    readers take the record time (`StoredEvent.occurred_at`, `Envelope.occurred_at`)."""

    actor: str = "system"
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        # (not dataclasses.asdict: it deep-copies, and this runs for every event stored)
        data: dict[str, Any] = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        if self.occurred_at is not None:  # absent: occurred when recorded (no bytes spent)
            data["occurred_at"] = self.occurred_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metadata:
        occurred = data.get("occurred_at")
        return cls(
            actor=str(data.get("actor") or "system"),
            correlation_id=data.get("correlation_id"),
            causation_id=data.get("causation_id"),
            occurred_at=datetime.fromisoformat(occurred) if occurred else None,
        )

    def occurred(self, at: datetime | date | None) -> Metadata:
        """This metadata for a fact that happened `at` (a day: its start, UTC; None: when
        recorded). A naive time is taken as UTC."""
        if at is None:
            return self if self.occurred_at is None else replace(self, occurred_at=None)
        if not isinstance(at, datetime):
            at = datetime.combine(at, time.min, UTC)
        elif at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return replace(self, occurred_at=at)


@dataclass(frozen=True)
class NewEvent:
    """An event ready to append: already encoded to its current schema version."""

    event_type: str
    schema_version: int
    data: dict[str, Any]
    meta: Metadata = field(default_factory=Metadata)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class StoredEvent:
    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    meta: Metadata
    recorded_at: datetime

    @property
    def occurred_at(self) -> datetime:
        """When its fact happened in the world (business time): when recorded unless said."""
        return self.meta.occurred_at or self.recorded_at


class UnknownEventType(LookupError):
    pass


class EventRegistry:
    """The event types one service publishes (or one consumer understands), by explicit name."""

    def __init__(self, source: str, topic: str) -> None:
        self.source = source
        self.topic = topic
        self._types: dict[str, type[DomainEvent]] = {}
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: E) -> E:
        """Class decorator: `@registry.register` on each event dataclass."""
        if cls.TYPE in self._types:
            raise ValueError(f"event type {cls.TYPE!r} registered twice")
        self._types[cls.TYPE] = cls
        self._adapters[cls.TYPE] = TypeAdapter(cls)
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator for a function turning `from_version` data into `from_version + 1` data."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    @property
    def types(self) -> Mapping[str, type[DomainEvent]]:
        return self._types

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._types

    def encode(self, event: DomainEvent, meta: Metadata) -> NewEvent:
        data = self._adapters[event.TYPE].dump_python(event, mode="json")
        return NewEvent(event_type=event.TYPE, schema_version=event.VERSION, data=data, meta=meta)

    def upcast(self, event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
        cls = self._types.get(event_type)
        if cls is None:
            raise UnknownEventType(event_type)
        version = schema_version
        while version < cls.VERSION:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise LookupError(f"no upcaster for {event_type} v{version}")
            data = step(dict(data))
            version += 1
        return data

    def decode(self, event_type: str, schema_version: int, data: dict[str, Any]) -> DomainEvent:
        current = self.upcast(event_type, schema_version, data)
        result: DomainEvent = self._adapters[event_type].validate_python(current)
        return result

    def decode_stored(self, events: Iterable[StoredEvent]) -> list[DomainEvent]:
        return [self.decode(e.event_type, e.schema_version, e.data) for e in events]

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: adapter.json_schema() for name, adapter in self._adapters.items()}
