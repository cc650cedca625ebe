"""CloudEvents 1.0 in Kafka binary mode (DESIGN.md §3): key = stream id, value = data as JSON,
everything else in `ce_*` headers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

# asyncpg's UUID: a uuid.UUID subclass written in C (parsed, hashed, encoded several times faster)
from asyncpg.pgproto.pgproto import UUID as _UUID
from pydantic_core import from_json

from shared.domain.events import Metadata, StoredEvent
from shared.eventstore.log import EventRow
from shared.eventstore.store import OutboxRow, SizeLimit

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
_SPEC_VERSION = SPEC_VERSION.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
T = TypeVar("T")


class EnvelopeError(ValueError):
    """A message that is not a well-formed Aidline CloudEvent."""


@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    source: str
    event_type: str
    subject: str
    time: datetime
    stream_version: int
    position: int
    schema_version: int
    meta: Metadata
    data: dict[str, Any]

    @property
    def occurred_at(self) -> datetime:
        """When its fact happened in the world (`ce_occurredat`; events published before it
        existed: `ce_time`)."""
        return self.meta.occurred_at or self.time


def encode(
    event: StoredEvent | OutboxRow, source: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one event; the relay's hot path, hence the plain list."""
    if isinstance(event, OutboxRow):
        actor, correlation, causation = event.actor, event.correlation_id, event.causation_id
        occurred = event.occurred_at  # the stored ISO text: nothing parsed or formatted here
        value = event.payload.encode()
    else:
        meta = event.meta
        actor, correlation, causation = meta.actor, meta.correlation_id, meta.causation_id
        occurred = None if meta.occurred_at is None else meta.occurred_at.isoformat()
        value = encode_data(event.data)
    time = event.recorded_at.isoformat().encode()
    headers = [
        ("ce_specversion", _SPEC_VERSION),
        ("ce_id", str(event.event_id).encode()),
        ("ce_source", source.encode()),
        ("ce_type", event.event_type.encode()),
        ("ce_subject", event.stream_id.encode()),
        ("ce_time", time),
        ("content-type", _CONTENT_TYPE),
        ("ce_streamversion", str(event.stream_version).encode()),
        ("ce_position", str(event.position).encode()),
        ("ce_schemaversion", str(event.schema_version).encode()),
        ("ce_correlationid", (correlation or "").encode()),
        ("ce_causationid", (causation or "").encode()),
        ("ce_actor", actor.encode()),
        # Business time; always sent (= ce_time when the fact is dated when recorded), so a
        # reader outside Aidline need not know the default.
        ("ce_occurredat", time if occurred is None else occurred.encode()),
    ]
    return event.stream_id.encode(), value, headers


def encode_data(data: dict[str, Any]) -> bytes:
    """An event's data as compact JSON (UTF-8, not \\u-escaped, as the outbox's PostgreSQL text
    the relay sends). orjson: 0.13 instead of 2.6 µs of CPU per event of bench_projection's
    mix (the rest of `encode`, ~8 µs, is the headers). What it refuses (integers beyond 64
    bits, keys that are not strings) goes through the json module as before; a non-finite
    float, which is no JSON, it writes as null where json wrote NaN."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()


# Kept free below Kafka's limit by the store: the database may write a number of the data in
# more characters than Python does (JSONB: 1e-07 as 0.0000001); 1 KiB of a MiB is room enough.
SIZE_MARGIN = 1024


def record_size(event: StoredEvent | OutboxRow, source: str) -> int:
    """Bytes of the event as a record batch of its own (batch header, the record's framing,
    key, value, headers): what the producer checks against `max_request_size` and what the
    broker's `message.max.bytes` / the topic's `max.message.bytes` must take."""
    key, value, headers = encode(event, source)
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return size


# What `record_size` counts besides the event's own texts, with room: the batch header (61
# bytes), the record's framing and the fourteen headers' names, lengths and fixed-size values
# (ids, times, numbers): 554 bytes at most.
_RECORD_FRAME_BOUND = 1024
# Bytes a backend's outbox text may take per byte of the data's compact UTF-8 JSON: a space
# after each `,` and `:` (PostgreSQL), a \u escape of 6 bytes for a character of one to three
# bytes (SQLite escapes DEL and every non-ASCII one; four bytes are two escapes, 12).
_PAYLOAD_BYTES_PER_BYTE = 6
# Per character of the other texts the record carries (UTF-8: at most 4 bytes).
_BYTES_PER_CHARACTER = 4


def record_size_bound(row: EventRow, source: str) -> int:
    """At least `record_size` of the event `row` becomes, on either backend, from its data's
    compact JSON (orjson, about 1 µs) instead of the envelope: the store's check spares nearly
    every event the measure (30 µs, a twentieth of a command's CPU; docs/benchmarks.md "Tenth
    session")."""
    meta = row["meta"]
    texts = (
        row["stream_id"],  # the key and ce_subject
        row["stream_id"],
        row["event_type"],
        source,
        meta["actor"] or "system",
        meta["correlation_id"] or "",
        meta["causation_id"] or "",
        meta.get("occurred_at") or "",
    )
    return (
        _PAYLOAD_BYTES_PER_BYTE * len(encode_data(row["data"]))
        + _BYTES_PER_CHARACTER * sum(map(len, texts))
        + _RECORD_FRAME_BOUND
    )


def kafka_limit(max_message_bytes: int, source: str) -> SizeLimit:
    """The store's limit for events the relay publishes from `source` (KAFKA_MAX_MESSAGE_BYTES
    less `SIZE_MARGIN`)."""
    return SizeLimit(
        max_message_bytes - SIZE_MARGIN,
        lambda event: record_size(event, source),
        lambda row: record_size_bound(row, source),
    )


_new, _set = object.__new__, object.__setattr__


def frozen(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of a frozen dataclass (without slots or __post_init__) from all its fields at
    once: its generated __init__ sets them one by one through object.__setattr__, which is most
    of an event's decoding time on a consumer's hot path."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj


def decode(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None
) -> Envelope:
    """Every consumer's hot path: decodes only the headers it keeps, parses JSON in Rust
    (pydantic-core's parser, several times faster than the json module)."""
    try:
        h = dict(headers)
        if h.get("ce_specversion") != _SPEC_VERSION:
            spec = h.get("ce_specversion")
            raise EnvelopeError(f"unsupported ce_specversion {spec.decode() if spec else spec!r}")
        # Keys only: the parser's string cache (16,384 strings, process-wide) otherwise fills
        # with ids and times, each seen once, and holds them (0.9 MB after three e2e runs).
        data = from_json(value, cache_strings="keys") if value else None
        if not isinstance(data, dict):
            raise EnvelopeError("value is not a JSON object")
        actor, correlation, causation, time, occurred = (
            h.get("ce_actor"),
            h.get("ce_correlationid"),
            h.get("ce_causationid"),
            h["ce_time"],
            h.get("ce_occurredat"),
        )
        meta = frozen(
            Metadata,
            {
                "actor": actor.decode() if actor else "system",
                "correlation_id": correlation.decode() if correlation else None,
                "causation_id": causation.decode() if causation else None,
                # None when it is ce_time (or absent: published before business time existed),
                # so most events cost no second date parse.
                "occurred_at": (
                    datetime.fromisoformat(occurred.decode())
                    if occurred and occurred != time
                    else None
                ),
            },
        )
        return frozen(
            Envelope,
            {
                "event_id": _UUID(h["ce_id"].decode()),
                "source": h["ce_source"].decode(),
                "event_type": h["ce_type"].decode(),
                "subject": h["ce_subject"].decode(),
                "time": datetime.fromisoformat(time.decode()),
                "stream_version": int(h["ce_streamversion"]),
                "position": int(h["ce_position"]),
                "schema_version": int(h["ce_schemaversion"]),
                "meta": meta,
                "data": data,
            },
        )
    except EnvelopeError:
        raise
    except (KeyError, ValueError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        # AttributeError/TypeError: a header without a value (Kafka allows null).
        raise EnvelopeError(f"malformed CloudEvent: {exc!r}") from exc
