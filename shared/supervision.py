"""Long-running work that must outlive a missing broker: capped exponential backoff with jitter,
and the state of each supervised task for /readyz and the metrics.

A service starts without Kafka (its outbox holds what it accepts); topic creation, the relay,
the consumers and a rebuild's first look at the topics connect in the background through
`retry`, and report here whether they run or wait, how often they failed and why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

T = TypeVar("T")

TASK_UP = Gauge(
    "aidline_task_up",
    "1 while a long-running task does its work, 0 while it waits or retries",
    ["task"],
)
TASK_ATTEMPTS = Gauge(
    "aidline_task_failed_attempts", "Failures of a long-running task since it last ran", ["task"]
)
TASK_FAILURES = Counter(
    "aidline_task_failures_total",
    "Failures of a long-running task, each followed by a retry",
    ["task"],
)


@dataclass(frozen=True)
class Backoff:
    """`initial`, doubling per failure, never above `cap`; each delay is cut by up to `jitter`
    of itself at random, so copies that lost the broker together do not return in step."""

    initial: float = 0.5
    cap: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The pause after the `attempt`-th failure in a row (1-based)."""
        ceiling = min(self.cap, self.initial * self.factor ** min(max(0, attempt - 1), 64))
        return ceiling * (1.0 - self.jitter * rand())


class TaskStatus:
    """What /readyz and the metrics say about one long-running task.

    starting → running (it reached what it needs) | standby (it waits its turn, e.g. another
    copy publishes) | done (one-off work finished) | retrying (it failed; `attempts` in a row,
    `last_error` names the kind of error, never its text: the probe is public) | stopped (it
    cannot go on by itself; an operator must act)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "starting"
        self.attempts = 0
        self.last_error: str | None = None
        TASK_UP.labels(name).set(0)
        TASK_ATTEMPTS.labels(name).set(0)

    @property
    def ok(self) -> bool:
        return self.state in ("running", "standby", "done")

    def _set(self, state: str) -> None:
        self.state = state
        TASK_UP.labels(self.name).set(1 if self.ok else 0)

    def running(self) -> None:
        self.attempts = 0
        TASK_ATTEMPTS.labels(self.name).set(0)
        self._set("running")

    def standby(self) -> None:
        self._set("standby")

    def done(self) -> None:
        self.running()
        self._set("done")

    def starting(self) -> None:
        self._set("starting")

    def stopped(self, exc: BaseException) -> None:
        """It stopped for good (the relay at an event Kafka refuses): not retried until the
        process restarts or something else resolves it."""
        self.last_error = type(exc).__name__
        self._set("stopped")

    def failed(self, exc: BaseException) -> None:
        self.attempts += 1
        self.last_error = type(exc).__name__
        TASK_ATTEMPTS.labels(self.name).set(self.attempts)
        TASK_FAILURES.labels(self.name).inc()
        self._set("retrying")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


def reraise_cancellation() -> None:
    """Raise CancelledError again if the current task is being cancelled. For a loop that
    retries on any error: a driver whose call was cut off by the cancellation may raise its own
    error instead (the cancellation is then spent), and the loop would retry for ever, holding
    up the stop (a test run hung on such a task, still reading a dropped schema)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def retry(
    status: TaskStatus, attempt: Callable[[], Awaitable[T]], backoff: Backoff = Backoff()
) -> T:
    """Await `attempt()` until it returns, pausing by `backoff` after each failure."""
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reraise_cancellation()
            status.failed(exc)
            pause = backoff.delay(status.attempts)
            # The traceback once per run of failures: a bug shows where, an absent broker
            # does not fill the log.
            log.warning("%s failed (attempt %d), retrying in %.1fs: %r",
                        status.name, status.attempts, pause, exc,
                        exc_info=status.attempts == 1)  # fmt: skip
            await asyncio.sleep(pause)
            status.starting()


async def supervise(
    status: TaskStatus, run: Callable[[], Awaitable[None]], backoff: Backoff = Backoff()
) -> None:
    """Run `run()` until cancelled: it is meant never to return, so a return counts as a
    failure too and it is started again (never dead silently)."""
    while True:
        await retry(status, run, backoff)
        status.failed(RuntimeError(f"{status.name} stopped"))
        log.error("%s stopped on its own; starting it again", status.name)
        await asyncio.sleep(backoff.delay(status.attempts))
        status.starting()
