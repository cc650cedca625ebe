from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
