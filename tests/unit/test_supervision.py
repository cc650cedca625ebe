"""The backoff that every Kafka-facing task uses while the broker is away, and what a
supervised task reports."""

from __future__ import annotations

import asyncio

import pytest

from shared.supervision import Backoff, TaskStatus, retry, supervise


def test_the_delay_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, cap=10.0, jitter=0.5)
    ceilings = [backoff.delay(n, rand=lambda: 0.0) for n in range(1, 9)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff.delay(10_000, rand=lambda: 0.0) == 10.0  # no overflow after a long outage


def test_jitter_cuts_each_delay_by_at_most_its_share() -> None:
    backoff = Backoff(initial=1.0, cap=8.0, jitter=0.5)
    assert backoff.delay(3, rand=lambda: 1.0) == 2.0  # the most cut: half of 4
    delays = {backoff.delay(3) for _ in range(200)}
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(delays) > 100, "copies that failed together do not retry in step"


async def test_retry_reports_each_failure_then_succeeds() -> None:
    status = TaskStatus("unit-retry")
    failures = iter([ConnectionError("down"), TimeoutError("slow")])
    seen: list[tuple[str, int, str | None]] = []

    async def attempt() -> str:
        for exc in failures:
            raise exc
        return "connected"

    async def observe() -> str:
        return await retry(status, attempt, Backoff(initial=0.001, cap=0.002))

    original = status.failed

    def failed(exc: BaseException) -> None:
        original(exc)
        seen.append((status.state, status.attempts, status.last_error))

    status.failed = failed  # type: ignore[method-assign]
    assert await observe() == "connected"
    assert seen == [("retrying", 1, "ConnectionError"), ("retrying", 2, "TimeoutError")]
    assert not status.ok  # it succeeded but never said it runs: still starting
    status.running()
    assert status.as_dict() == {
        "ok": True,
        "state": "running",
        "attempts": 0,
        "last_error": "TimeoutError",  # the last one stays visible
    }


async def test_a_supervised_task_that_returns_or_fails_is_started_again() -> None:
    status = TaskStatus("unit-supervise")
    runs = 0
    third = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("bug")
        if runs == 2:
            return  # a long-running task that returns has stopped doing its job
        status.running()
        third.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise(status, run, Backoff(initial=0.001, cap=0.002)))
    await asyncio.wait_for(third.wait(), 5)
    assert runs == 3 and status.state == "running" and status.last_error == "RuntimeError"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancellation_is_never_retried() -> None:
    status = TaskStatus("unit-cancel")
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry(status, run))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert status.attempts == 0
