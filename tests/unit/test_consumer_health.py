"""What /readyz says about a consumer: stopped, stalled, or lag that keeps growing."""

from __future__ import annotations

import time
from typing import Any

from shared.messaging.consumer import EventConsumer


def _consumer() -> EventConsumer:
    async def handler(*_: Any) -> None:
        return None

    store: Any = None  # health() never touches the store
    return EventConsumer("c", ["t"], handler, store, bootstrap_servers="x", stall_seconds=30)


def test_a_consumer_waiting_for_its_partitions_is_not_ready() -> None:
    consumer = _consumer()
    consumer._running = True
    consumer._last_poll = time.monotonic()
    health = consumer.health()
    assert not health.ok and health.problems == ["waiting for its partitions"]


def test_a_consumer_that_is_not_running_is_not_ready() -> None:
    health = _consumer().health()
    assert not health.ok and health.problems == ["not running"]


def test_a_polling_consumer_without_lag_is_ready() -> None:
    consumer = _consumer()
    consumer._running = True
    consumer.assigned.set()
    consumer._last_poll = time.monotonic()
    assert consumer.health().ok


def test_a_consumer_that_stopped_polling_is_not_ready() -> None:
    consumer = _consumer()
    consumer._running = True
    consumer.assigned.set()
    consumer._last_poll = time.monotonic() - 120
    health = consumer.health()
    assert not health.ok and "has not polled" in health.problems[0]


def test_lag_that_keeps_growing_is_reported() -> None:
    consumer = _consumer()
    consumer._running = True
    consumer.assigned.set()
    consumer._last_poll = time.monotonic()
    consumer._lag_total = 500
    consumer._lag_growing_since = time.monotonic() - 45
    health = consumer.health()
    assert not health.ok and "lag has grown" in health.problems[0]
