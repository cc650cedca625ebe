"""An event too large for Kafka is answered 413 naming the field; `aidline status` shows a relay
stopped at an event Kafka refuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.cli.status import _relay
from shared.domain import Metadata, TooLarge
from shared.eventstore.postgres import PostgresEventLog
from shared.eventstore.sqlite import SqliteEventLog
from shared.eventstore.store import MAX_POSITION, OutboxRow
from shared.messaging import envelope
from shared.web.problems import problem_for

SOURCE = "/aidline/test"


def test_an_event_too_large_is_a_413_naming_the_field() -> None:
    problem = problem_for(TooLarge("serials", "too large", detail="Nothing was stored."))
    body = problem.body()
    assert (problem.status, body["type"].rsplit("/", 1)[-1]) == (413, "event-too-large")
    assert body["errors"] == [{"field": "serials", "message": "too large"}]


def test_status_shows_where_a_relay_stopped_and_why() -> None:
    stopped = {
        "ok": False,
        "state": "stopped",
        "position": 41,
        "lag": 3,
        "oldest_unpublished_seconds": 12.5,
        "stopped_at": {
            "position": 42,
            "event_id": "7d0c…",
            "event_type": "shipment.dispatched",
            "stream_id": "SHP-1",
            "error": "MessageSizeTooLargeError",
        },
    }
    text = _relay(stopped)
    assert "[red]stopped[/] at 41, lag 3, oldest 12.5 s" in text
    assert "stopped at position 42" in text and "MessageSizeTooLargeError" in text
    assert "[green]running[/] at 7, lag 0" in _relay(
        {"ok": True, "state": "running", "position": 7, "lag": 0, "stopped_at": None}
    )


# Every JSON value an event's data may hold: any text (control characters, DEL, every plane),
# integers beyond 64 bits, floats NaN and infinities included (the store refuses those later).
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_TEXT = st.text(max_size=40)
_SHORT: dict[str, Any] = {
    "stream_id": "S",
    "event_type": "t",
    "actor": "",
    "correlation": None,
    "causation": None,
    "occurred": None,
}


@given(
    data=st.dictionaries(st.text(), _JSON, max_size=6),
    stream_id=st.text(min_size=1, max_size=40),
    event_type=st.text(min_size=1, max_size=40),
    actor=_TEXT,
    correlation=st.none() | _TEXT,
    causation=st.none() | _TEXT,
    occurred=st.none() | st.datetimes(timezones=st.just(UTC)),
)
# The costliest bytes, many of each: the bound's factors must hold where they are tightest.
@example(data={"n": "\x7f" * 2000}, **_SHORT)  # DEL: 1 byte, \u007f on SQLite
@example(data={"n": "é" * 2000}, **_SHORT)  # 2 bytes, \u00e9
@example(data={"n": "\U0001f600" * 1000}, **_SHORT)  # 4 bytes, two escapes
@example(data={"n": [0] * 2000, "m": {str(i): 0 for i in range(500)}}, **_SHORT)  # separators
@example(data={"n": [1e-07] * 1000}, **_SHORT)  # Python's repr is a byte longer
@settings(max_examples=300, deadline=None)
def test_the_cheap_bound_is_never_below_the_measure_on_either_backend(
    data: dict[str, Any],
    stream_id: str,
    event_type: str,
    actor: str,
    correlation: str | None,
    causation: str | None,
    occurred: datetime | None,
) -> None:
    """The store skips the measure of an event the bound puts under the limit: a bound below the
    measure would let an event Kafka refuses be stored."""
    meta = Metadata(actor, correlation, causation, occurred).as_dict()
    row: dict[str, Any] = {
        "stream_id": stream_id,
        "stream_version": 2**31 - 1,
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "schema_version": 2**31 - 1,
        "data": data,
        "meta": meta,
        "recorded_at": datetime.now(UTC),
    }
    bound = envelope.record_size_bound(row, SOURCE)
    for log in (PostgresEventLog, SqliteEventLog):
        outbox = OutboxRow(MAX_POSITION, stream_id, row["stream_version"], row["event_id"],
                           event_type, row["schema_version"], row["recorded_at"],
                           log.payload_text(cast(Any, None), data), meta["actor"] or "system",
                           correlation, causation, meta.get("occurred_at"))  # fmt: skip
        assert bound >= envelope.record_size(outbox, SOURCE), log.__name__
