"""CloudEvents 1.0 in Kafka binary mode (DESIGN.md §3): key = stream id, value = data as JSON,
everything else in `ce_*` headers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.events import Metadata, StoredEvent

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


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


def encode(event: StoredEvent, source: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_source": source,
        "ce_type": event.event_type,
        "ce_subject": event.stream_id,
        "ce_time": event.recorded_at.isoformat(),
        "content-type": CONTENT_TYPE,
        "ce_streamversion": str(event.stream_version),
        "ce_position": str(event.position),
        "ce_schemaversion": str(event.schema_version),
        "ce_correlationid": event.meta.correlation_id or "",
        "ce_causationid": event.meta.causation_id or "",
        "ce_actor": event.meta.actor,
    }
    value = json.dumps(event.data, separators=(",", ":")).encode()
    return (
        event.stream_id.encode(),
        value,
        [(name, text.encode()) for name, text in headers.items()],
    )


def decode(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None
) -> Envelope:
    try:
        h = {name: raw.decode() for name, raw in headers}
        if h.get("ce_specversion") != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce_specversion {h.get('ce_specversion')!r}")
        data = json.loads(value) if value else None
        if not isinstance(data, dict):
            raise EnvelopeError("value is not a JSON object")
        return Envelope(
            event_id=uuid.UUID(h["ce_id"]),
            source=h["ce_source"],
            event_type=h["ce_type"],
            subject=h["ce_subject"],
            time=datetime.fromisoformat(h["ce_time"]),
            stream_version=int(h["ce_streamversion"]),
            position=int(h["ce_position"]),
            schema_version=int(h["ce_schemaversion"]),
            meta=Metadata(
                actor=h.get("ce_actor") or "system",
                correlation_id=h.get("ce_correlationid") or None,
                causation_id=h.get("ce_causationid") or None,
            ),
            data=data,
        )
    except EnvelopeError:
        raise
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"malformed CloudEvent: {exc!r}") from exc
