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
    with caplog.at_level(logging.ERROR, logger="shared.runtime"):
        await asyncio.wait_for(runtime.stop(), 5)
    assert [r.getMessage() for r in caplog.records] == [
        "stopping: task stubborn did not end within 0.2 s of its cancellation; left behind"
    ]
    release.set()
