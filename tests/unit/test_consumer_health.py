"""What /readyz says about a consumer: stopped, stalled, or lag that keeps growing."""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from shared.messaging.consumer.health import ConsumerHealth, Liveness


def _liveness() -> Liveness:
    return Liveness("c", stall_seconds=30)


def _health(liveness: Liveness, *, assigned: bool) -> ConsumerHealth:
    return liveness.health(assigned=assigned, applied=0, dead_lettered=0)


def test_a_consumer_waiting_for_its_partitions_is_not_ready() -> None:
    liveness = _liveness()
    liveness.running = True
    liveness.polled()
    health = _health(liveness, assigned=False)
    assert not health.ok and health.problems == ["waiting for its partitions"]


def test_a_consumer_that_is_not_running_is_not_ready() -> None:
    health = _health(_liveness(), assigned=False)
    assert not health.ok and health.problems == ["not running"]


def test_a_polling_consumer_without_lag_is_ready() -> None:
    liveness = _liveness()
    liveness.running = True
    liveness.polled()
    assert _health(liveness, assigned=True).ok


def test_a_consumer_that_stopped_polling_is_not_ready() -> None:
    liveness = _liveness()
    liveness.running = True
    liveness.polled(time.monotonic() - 120)
    health = _health(liveness, assigned=True)
    assert not health.ok and "has not polled" in health.problems[0]


def test_lag_that_keeps_growing_is_reported() -> None:
    liveness = _liveness()
    liveness.running = True
    liveness.polled()
    # 500 behind, up from nothing, since 45 s ago
    liveness.observe({TopicPartition("t", 0): 500}, at=time.monotonic() - 45)
    health = _health(liveness, assigned=True)
    assert not health.ok and "lag has grown" in health.problems[0]


def test_partitions_taken_away_are_no_longer_reported() -> None:
    liveness = _liveness()
    mine, theirs = TopicPartition("t", 0), TopicPartition("t", 1)
    liveness.observe({mine: 3, theirs: 5})
    liveness.forget([theirs])  # another instance of the group holds it now
    liveness.forget([theirs])
    assert liveness.lag == {mine: 3}
