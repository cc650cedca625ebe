"""A consumer's liveness for /readyz: running, polling, and lag that does not keep growing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge

LAG = Gauge(
    "aidline_consumer_lag", "Messages behind the partition end", ["consumer", "topic", "partition"]
)


@dataclass
class ConsumerHealth:
    running: bool
    seconds_since_poll: float | None
    lag: int
    lag_growing_seconds: float
    applied: int
    dead_lettered: int
    ok: bool
    problems: list[str] = field(default_factory=list)


class Liveness:
    def __init__(self, consumer: str, stall_seconds: float) -> None:
        self.consumer = consumer
        self.stall_seconds = stall_seconds
        self.running = False
        self.last_poll: float | None = None
        self.lag: dict[TopicPartition, int] = {}
        self._lag_total = 0
        self._lag_growing_since: float | None = None
        self._starved_since: float | None = None

    def polled(self, at: float | None = None) -> None:
        self.last_poll = time.monotonic() if at is None else at

    def measure(self, consumer: AIOKafkaConsumer, applied: Mapping[TopicPartition, int]) -> None:
        """The lag of every assigned partition: its end at the client's last fetch less the
        next offset `applied` (stored, or the partition's start, at its assignment; 0 if
        neither is known). It never waits: aiokafka's `position()` waits, round after round,
        for a position that is not valid (a reset in flight, a leader away), and the loop must
        get back to `getmany`, where the client's errors surface."""
        lag = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag[tp] = max(0, highwater - applied.get(tp, 0))
        self.observe(lag)

    def starved(self, delivered: bool, at: float | None = None) -> bool:
        """Whether the client has delivered nothing for `stall_seconds` while its partitions'
        ends, as last fetched, are ahead of what is applied (after `measure`). aiokafka can
        stop fetching without a word after a request times out (aio-libs/aiokafka#1037): the
        loop keeps polling and gets nothing. The caller then starts a new client."""
        now = time.monotonic() if at is None else at
        if delivered or self._lag_total == 0:
            self._starved_since = None
            return False
        if self._starved_since is None:
            self._starved_since = now
        return now - self._starved_since > self.stall_seconds

    def restarted(self) -> None:
        """A new client: it has had no chance to deliver yet."""
        self._starved_since = None

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """Partitions taken away (another instance of the group holds them now): their lag is
        that instance's to report."""
        for tp in partitions:
            if self.lag.pop(tp, None) is not None:
                with contextlib.suppress(KeyError):
                    LAG.remove(self.consumer, tp.topic, str(tp.partition))

    def observe(self, lag: Mapping[TopicPartition, int], at: float | None = None) -> None:
        """Record each partition's lag; note when the total started to grow."""
        now = time.monotonic() if at is None else at
        for tp, behind in lag.items():
            self.lag[tp] = behind
            LAG.labels(self.consumer, tp.topic, str(tp.partition)).set(behind)
        total = sum(lag.values())
        if total == 0 or total < self._lag_total:
            self._lag_growing_since = None
        elif total > self._lag_total and self._lag_growing_since is None:
            self._lag_growing_since = now
        self._lag_total = total

    def health(self, *, assigned: bool, applied: int, dead_lettered: int) -> ConsumerHealth:
        now = time.monotonic()
        since_poll = None if self.last_poll is None else now - self.last_poll
        growing = 0.0 if self._lag_growing_since is None else now - self._lag_growing_since
        problems = []
        if not self.running:
            problems.append("not running")
        elif not assigned:
            problems.append("waiting for its partitions")
        elif since_poll is not None and since_poll > self.stall_seconds:
            problems.append(f"has not polled for {since_poll:.0f}s")
        if growing > self.stall_seconds:
            problems.append(f"lag has grown for {growing:.0f}s (now {self._lag_total})")
        return ConsumerHealth(
            running=self.running,
            seconds_since_poll=since_poll,
            lag=self._lag_total,
            lag_growing_seconds=growing,
            applied=applied,
            dead_lettered=dead_lettered,
            ok=not problems,
            problems=problems,
        )
