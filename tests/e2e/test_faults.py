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
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from services.delivery import consumers as delivery_consumers
from services.request import consumers as request_consumers
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from tests.e2e.load import Load
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.infra import KAFKA, eventually, header, produce, read_topic

DEPLOY = Path(__file__).parents[2] / "deploy" / "local"
TOPIC_OF = {"request": REQUESTS, "allocation": ALLOCATIONS, "delivery": DELIVERIES}
WRITE_SERVICES = tuple(TOPIC_OF)


@pytest.fixture
async def faulty_stack(kafka: str) -> AsyncIterator[Stack]:
    database_url = await create_database()
    # Approvals happen on their own so that work flows on to the delivery service.
    stack = Stack(database_url, env_overrides={"AUTO_APPROVE": "true"})
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(s) for s in SERVICES))
        yield stack
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def _connect(stack: Stack) -> asyncpg.Connection:
    url = make_url(stack.database_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )


async def _restart(stack: Stack, service: str) -> None:
    stack.kill(service)
    stack.start(service)
    await stack.wait_ready(service, timeout=90)


def _broker(command: str) -> None:
    subprocess.run([str(DEPLOY / "kafka.sh"), command], check=True, env=os.environ.copy())


def _crash_postgres() -> None:
    """`pg_ctl restart -m immediate`: every connection cut, no checkpoint, crash recovery."""
    subprocess.run([str(DEPLOY / "postgres.sh"), "crash"], check=True, env=os.environ.copy())


async def _schemas_with(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = $1", table
    )
    return sorted(r["table_schema"] for r in rows)


# The consumers that act on some of their topics' event types only.
ACTS_ON = {"delivery": delivery_consumers.HANDLED, "request": request_consumers.HANDLED}


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
                lambda n=len(load.acks): acknowledged_more_than(n + 20),
                60,
                "load before the next fault",
            )
            await _restart(stack, service)
        await eventually(lambda n=len(load.acks): acknowledged_more_than(n + 20), 60, "load")
        _broker("down")  # the broker goes away and comes back
        _broker("up")
        await eventually(lambda n=len(load.acks): acknowledged_more_than(n + 20), 60, "load")
        conn = await _connect(stack)
        try:  # full redelivery: every consumer forgets where it was
            for schema in await _schemas_with(conn, "consumer_offsets"):
                await conn.execute(f'DELETE FROM "{schema}".consumer_offsets')
        finally:
            await conn.close()
        for service in SERVICES:
            await _restart(stack, service)
        # Poison last: an undecodable message has no event id to recognise it by, so a full
        # redelivery after it would (rightly) dead-letter it again.
        for topic in (REQUESTS, ALLOCATIONS, DELIVERIES):
            await produce(topic, [poison])
        await eventually(lambda n=len(load.acks): acknowledged_more_than(n + 20), 60, "load")
    finally:
        stop.set()
        await running

    counts = await _reconcile(stack, load, poison)
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
            await eventually(lambda n=len(load.acks): acknowledged_more_than(n + 40), 60, "load")
            _crash_postgres()
        await eventually(lambda n=len(load.acks): acknowledged_more_than(n + 40), 90, "load")
    finally:
        stop.set()
        await running
    for service in SERVICES:  # carried on by themselves: no restart was needed
        await stack.wait_ready(service, timeout=60)
    # A command that met the database away was told to retry, not that the service broke.
    assert set(load.server_errors) <= {503}, load.server_errors

    counts = await _reconcile(stack, load)
    print("\nreconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))


async def _reconcile(stack: Stack, load: Load, poison: bytes | None = None) -> dict[str, int]:
    acks = load.acks
    assert len(acks) >= 100, "the load made progress"
    ids_by_service: dict[str, set[str]] = {}
    for ack in acks:
        ids_by_service.setdefault(ack.service, set()).add(ack.event_id)
    conn = await _connect(stack)
    try:
        # 1. Every acknowledged command is in its store, exactly once.
        type_of: dict[str, str] = {}
        for service, ids in ids_by_service.items():
            rows = await conn.fetch(
                f'SELECT event_id::text AS id, event_type FROM "{service}".events '
                "WHERE event_id::text = ANY($1)",
                list(ids),
            )
            type_of |= {r["id"]: r["event_type"] for r in rows}
            found = Counter(r["id"] for r in rows)
            assert set(found) == ids, f"{service}: acknowledged but not stored"
            assert max(found.values()) == 1

        # 2. Applied exactly once by every consumer of its topic, once everything has caught up:
        # the write services' consumers, and the projection's live generation (a schema
        # `projection_g<n>` whose audit trail records what it applied; the base schema keeps
        # only the rebuild bookkeeping).
        tracking = {s: "processed_events" for s in WRITE_SERVICES}
        live = [
            schema
            for schema in await _schemas_with(conn, "audit")
            if await conn.fetchval(f'SELECT count(*) FROM "{schema}".audit')
        ]
        assert len(live) == 1, f"one live projection generation: {live}"
        tracking[live[0]] = "audit"
        consumer_schemas = list(tracking)
        expected: dict[str, set[str]] = {}
        for schema in consumer_schemas:
            readers = {
                "request": {"delivery"},
                "allocation": {"request", "delivery"},
                "delivery": {"allocation", "request"},
            }.get(schema, set(ids_by_service))
            expected[schema] = set().union(*(ids_by_service.get(s, set()) for s in readers))
            if schema in ACTS_ON:  # a consumer passes over, unrecorded, the types it ignores
                expected[schema] = {i for i in expected[schema] if type_of[i] in ACTS_ON[schema]}

        missing: dict[str, int] = {}

        async def all_applied() -> bool:
            for schema, ids in expected.items():
                rows = await conn.fetch(
                    f'SELECT event_id::text AS id FROM "{schema}".{tracking[schema]} '
                    "WHERE event_id::text = ANY($1)",
                    list(ids),
                )
                missing[schema] = len(ids - {r["id"] for r in rows})
            return not any(missing.values())

        try:
            await eventually(all_applied, 180, "every consumer to apply every acknowledged event")
        except BaseException:
            print("\nstill missing per consumer schema:", missing)
            raise
        # 3. In the read models, exactly once in effect: the board shows every acknowledged
        #    requirement with its quantity as submitted (a double application would double it).
        board: dict[str, int] = {}
        for schema in await _schemas_with(conn, "requirements"):
            if not schema.startswith("projection"):
                continue  # the request service has a table of that name too
            rows = await conn.fetch(
                f'SELECT requirement_id, requested FROM "{schema}".requirements '
                "WHERE requirement_id = ANY($1)",
                list(load.submitted),
            )
            if rows:
                board = {r["requirement_id"]: r["requested"] for r in rows}
        assert board == load.submitted, "the board shows each requirement once, as submitted"
    finally:
        await conn.close()

    # 4. On the topics by ce_id: every acknowledged event, duplicates on the wire allowed.
    duplicates = 0
    for service, ids in ids_by_service.items():
        records = await read_topic(TOPIC_OF[service])
        seen = Counter(v.decode() for r in records for k, v in r.headers if k == "ce_id")
        missing = ids - set(seen)
        assert not missing, f"{len(missing)} acknowledged {service} events never reached Kafka"
        duplicates += sum(seen[i] - 1 for i in ids)

    # 5. The dead-letter topics hold exactly the poison messages (none without poison).
    dead = await _dead_letters(stack, poison)
    return {
        "acknowledged": len(acks),
        "unavailable_while_faulted": load.unavailable,
        "refused_by_rules": load.refused,
        "consumers_reconciled": len(expected),
        "requirements_on_the_board": len(board),
        "duplicates_on_the_wire": duplicates,
        "dead_lettered_poison": dead,
    }


async def _dead_letters(stack: Stack, poison: bytes | None) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if f".dlq.{stack.group_prefix}" in t]
    finally:
        await admin.close()
    assert topics, "the consumers created their dead-letter topics"
    if poison is None:  # a fault of the infrastructure is retried, never dead-lettered
        for topic in topics:  # (earlier runs' poison is met again from offset 0)
            messages = await read_topic(topic)
            assert all(m.value.startswith(b"poison-") for m in messages), f"{topic}: nothing"
        return 0

    async def all_dead_lettered() -> bool:
        return all([any(m.value == poison for m in await read_topic(t)) for t in topics])

    await eventually(all_dead_lettered, 60, "every consumer to dead-letter the poison")
    for topic in topics:
        messages = await read_topic(topic)
        # Nothing but poison is dead-lettered (a long-lived broker also holds earlier runs'
        # poison, which a fresh consumer meets again on its way from offset 0).
        assert all(m.value.startswith(b"poison-") for m in messages), f"{topic}: only poison"
        # Dead letters are published at least once (a retried batch publishes again): what
        # counts is that this run's poison is named, from one place.
        ours = {
            (header(m, "dlq_original_topic"), header(m, "dlq_original_offset"))
            for m in messages
            if m.value == poison
        }
        assert len(ours) == 1, f"{topic}: this run's poison message, once"
    return len(topics)
