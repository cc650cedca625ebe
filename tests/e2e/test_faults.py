"""Nothing acknowledged is lost (DESIGN.md §6), proven by breaking things on purpose.

A steady load of commands runs across the services while, in turn: each service is killed -9
and restarted; the broker is stopped and restarted; a poison message lands on every topic; and
every consumer's stored offsets are reset to the start (full redelivery). Then the counts are
reconciled: every acknowledged command is in its store exactly once, on its topic (duplicates on
the wire allowed), applied exactly once by every consumer and in the read models; the dead-letter
topics hold exactly the poison messages.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from tests.e2e.load import Load
from tests.e2e.reconcile import connect, reconcile, schemas_with
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.infra import eventually, produce

DEPLOY = Path(__file__).parents[2] / "deploy" / "local"


@pytest.fixture
async def faulty_stack(kafka: str) -> AsyncIterator[Stack]:
    database_url = await create_database()
    # Approvals happen on their own so that work flows on to the delivery service. Static group
    # members: a service killed and started again takes its partitions back at once (its
    # consumers otherwise wait out the dead ones' 10 s session first; dynamic members are
    # killed and restarted in test_instances.py).
    stack = Stack(
        database_url,
        env_overrides={"AUTO_APPROVE": "true", "KAFKA_GROUP_INSTANCE_ID": "faults-1"},
    )
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(s) for s in SERVICES))
        yield stack
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def _restart(stack: Stack, service: str) -> None:
    stack.kill(service)
    stack.start(service)
    await stack.wait_ready(service, timeout=90)


def _broker(command: str) -> None:
    subprocess.run([str(DEPLOY / "kafka.sh"), command], check=True, env=os.environ.copy())


def _crash_postgres() -> None:
    """`pg_ctl restart -m immediate`: every connection cut, no checkpoint, crash recovery."""
    subprocess.run([str(DEPLOY / "postgres.sh"), "crash"], check=True, env=os.environ.copy())


async def test_nothing_acknowledged_is_lost_under_faults(faulty_stack: Stack) -> None:
    stack = faulty_stack
    load = Load(stack)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    poison = f"poison-{uuid.uuid4()}".encode()

    async def acknowledged_more_than(count: int) -> bool:
        return len(load.acks) > count

    try:
        for service in SERVICES:  # kill -9 each service in turn, under load
            await eventually(
                partial(acknowledged_more_than, len(load.acks) + 20),
                60,
                "load before the next fault",
            )
            await _restart(stack, service)
        await eventually(partial(acknowledged_more_than, len(load.acks) + 20), 60, "load")
        _broker("down")  # the broker goes away and comes back
        _broker("up")
        await eventually(partial(acknowledged_more_than, len(load.acks) + 20), 60, "load")
        conn = await connect(stack)
        try:  # full redelivery: every consumer forgets where it was
            for schema in await schemas_with(conn, "consumer_offsets"):
                await conn.execute(f'DELETE FROM "{schema}".consumer_offsets')
        finally:
            await conn.close()
        for service in SERVICES:
            await _restart(stack, service)
        # Poison last: an undecodable message has no event id to recognise it by, so a full
        # redelivery after it would (rightly) dead-letter it again.
        for topic in (REQUESTS, ALLOCATIONS, DELIVERIES):
            await produce(topic, [poison])
        await eventually(partial(acknowledged_more_than, len(load.acks) + 20), 60, "load")
    finally:
        stop.set()
        await running

    counts = await reconcile(stack, load, poison)
    print("\nreconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))


async def test_nothing_acknowledged_is_lost_when_postgres_restarts_abruptly(
    faulty_stack: Stack,
) -> None:
    """The database every service stores in is cut off mid-load and comes back after crash
    recovery: what was acknowledged before survives (committed = durable), commands during the
    outage fail rather than being acknowledged, and the services carry on without a restart."""
    stack = faulty_stack
    load = Load(stack, seed=23)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))

    async def acknowledged_more_than(count: int) -> bool:
        return len(load.acks) > count

    try:
        for _ in range(2):
            await eventually(partial(acknowledged_more_than, len(load.acks) + 40), 60, "load")
            _crash_postgres()
        await eventually(partial(acknowledged_more_than, len(load.acks) + 40), 90, "load")
    finally:
        stop.set()
        await running
    for service in SERVICES:  # carried on by themselves: no restart was needed
        await stack.wait_ready(service, timeout=60)
    # A command that met the database away was told to retry, not that the service broke.
    assert set(load.server_errors) <= {503}, load.server_errors

    counts = await reconcile(stack, load)
    print("\nreconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))
