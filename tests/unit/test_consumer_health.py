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


class _Client:
    """What `measure` may read of aiokafka's consumer: its assignment and each partition's end
    at the last fetch. Its `position()` would wait for a valid position: never to be called."""

    def __init__(self, highwater: dict[TopicPartition, int | None]) -> None:
        self._highwater = highwater

    def assignment(self) -> set[TopicPartition]:
        return set(self._highwater)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater[tp]

    async def position(self, tp: TopicPartition) -> int:
        raise AssertionError("measure waited for aiokafka's position")


def test_lag_is_the_partition_end_less_the_next_offset_applied_and_never_waits() -> None:
    liveness = _liveness()
    applied, fresh, unfetched = (TopicPartition("t", n) for n in range(3))
    client = _Client({applied: 120, fresh: 40, unfetched: None})
    # `fresh` has no offset known yet: it counts from 0. `unfetched` has no end known yet.
    liveness.measure(client, {applied: 100, unfetched: 7})
    assert liveness.lag == {applied: 20, fresh: 40}
    liveness.measure(client, {applied: 130, fresh: 40})
    assert liveness.lag == {applied: 0, fresh: 0}


def test_a_client_that_delivers_nothing_while_messages_wait_is_starved() -> None:
    liveness = _liveness()  # stall_seconds=30
    behind = TopicPartition("t", 0)
    liveness.observe({behind: 5})
    assert not liveness.starved(delivered=False, at=100.0)
    assert not liveness.starved(delivered=False, at=130.0)
    assert liveness.starved(delivered=False, at=130.5)
    liveness.restarted()  # a new client gets its own time
    assert not liveness.starved(delivered=False, at=131.0)


def test_a_client_is_not_starved_while_it_delivers_or_nothing_waits() -> None:
    liveness = _liveness()
    behind = TopicPartition("t", 0)
    liveness.observe({behind: 5})
    assert not liveness.starved(delivered=False, at=100.0)
    assert not liveness.starved(delivered=True, at=120.0)  # a delivery starts the time again
    assert not liveness.starved(delivered=False, at=140.0)
    liveness.observe({behind: 0})
    assert not liveness.starved(delivered=False, at=500.0)  # nothing to deliver
