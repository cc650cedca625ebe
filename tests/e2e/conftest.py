from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.stack import SERVICES, Stack, create_database, drop_database


@pytest.fixture(scope="package")
async def stack(kafka: str) -> AsyncIterator[Stack]:
    """The four services as processes, ready, on a fresh database, shared by the e2e tests and
    stopped when they are done (left running, they would answer other tests' events too)."""
    database_url = await create_database()
    # The broker outlives test runs: attach to live traffic rather than replay its history.
    running = Stack(database_url, env_overrides={"CONSUMER_START_AT": "latest"})
    try:
        for service in SERVICES:
            running.start(service)
        await asyncio.gather(*(running.wait_ready(service) for service in SERVICES))
        yield running
    finally:
        running.stop_all()
        await drop_database(database_url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e tests that bring stacks of their own run before the shared `stack` starts: it
    reads the shared topics from where they were when it started, and behind the thousands of
    events a fault test writes there its own tests' events waited past their timeouts."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in item.path.parents]
    ordered = sorted(
        (items[i] for i in slots), key=lambda it: "stack" in getattr(it, "fixturenames", ())
    )
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
