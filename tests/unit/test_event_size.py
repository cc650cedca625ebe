"""An event too large for Kafka is answered 413 naming the field; `aidline status` shows a relay
stopped at an event Kafka refuses."""

from __future__ import annotations

from shared.cli.status import _relay
from shared.domain import TooLarge
from shared.web.problems import problem_for


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
