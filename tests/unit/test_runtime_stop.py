"""Stopping a service is bounded: a supervised task that does not end on cancellation is named
in the log and left behind, not waited for forever."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from shared import runtime as runtime_module
from shared.contracts import topics
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


def _runtime(tmp_path: Path) -> ServiceRuntime:
    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    return ServiceRuntime(
        settings, schema="stop", migrations=tmp_path, topic=topics.DELIVERIES, source="/test"
    )


async def test_a_task_that_ignores_cancellation_does_not_hold_up_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "STOP_TASK_SECONDS", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # what a driver call stuck on a dead socket looks like from here

    async def polite() -> None:
        await asyncio.Event().wait()

    runtime = _runtime(tmp_path)
    runtime.supervise("stubborn", stubborn)
    runtime.supervise("polite", polite)
    await asyncio.sleep(0)
    try:
        with caplog.at_level(logging.ERROR, logger="shared.runtime"):
            await asyncio.wait_for(runtime.stop(), 5)
    finally:  # even when failing: a task left behind would hang the session's end
        release.set()
        _cancel("stubborn")
    # The runtime's records only: the session's loop may run other tests' tasks meanwhile.
    assert [r.getMessage() for r in caplog.records if r.name == "shared.runtime"] == [
        "stopping: task stubborn did not end within 0.2 s of its cancellation; left behind"
    ]


async def test_a_task_whose_driver_turns_the_cancellation_into_an_error_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A call cut off by the cancellation may raise the driver's own error instead: the
    supervised task must end all the same, not retry for ever (it held up a test run's end)."""
    monkeypatch.setattr(runtime_module, "STOP_TASK_SECONDS", 0.5)
    started, converting = asyncio.Event(), True

    async def driver_call() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if converting:
                raise ConnectionResetError("the driver's own error") from None
            raise

    runtime = _runtime(tmp_path)
    runtime.supervise("reader", driver_call)
    await started.wait()
    try:
        with caplog.at_level(logging.WARNING):
            await runtime.stop()
    finally:  # a failure here must not leave the task to hang the session's end
        converting = False
        _cancel("reader")
    assert not [r.getMessage() for r in caplog.records if "reader" in r.getMessage()]


def _cancel(name: str) -> None:
    """End what a test left behind on the session's loop."""
    for task in asyncio.all_tasks():
        if task.get_name() == name:
            task.cancel()
