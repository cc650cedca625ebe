"""Reconciling a run of the whole stack under load (tests/e2e/load.py) after faults: every
acknowledged command is in its store exactly once, on its topic (duplicates on the wire
allowed), applied exactly once by every consumer and in the read models; the dead-letter topics
hold exactly the poison messages (none without). The fault tests of the services, the database
and the brokers share it."""

from __future__ import annotations

from collections import Counter

import asyncpg
from sqlalchemy.engine import make_url

from services.delivery import consumers as delivery_consumers
from services.request import consumers as request_consumers
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.messaging.kafka import new_admin
from tests.e2e.load import Load
from tests.e2e.stack import Stack
from tests.infra import eventually, header, read_topic

TOPIC_OF = {"request": REQUESTS, "allocation": ALLOCATIONS, "delivery": DELIVERIES}
WRITE_SERVICES = tuple(TOPIC_OF)


async def connect(stack: Stack) -> asyncpg.Connection:
    url = make_url(stack.database_url)
    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )


async def schemas_with(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = $1", table
    )
    return sorted(r["table_schema"] for r in rows)


# The consumers that act on some of their topics' event types only.
ACTS_ON = {"delivery": delivery_consumers.HANDLED, "request": request_consumers.HANDLED}


async def reconcile(stack: Stack, load: Load, poison: bytes | None = None) -> dict[str, int]:
    acks = load.acks
    assert len(acks) >= 100, "the load made progress"
    ids_by_service: dict[str, set[str]] = {}
    for ack in acks:
        ids_by_service.setdefault(ack.service, set()).add(ack.event_id)
    conn = await connect(stack)
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
            for schema in await schemas_with(conn, "audit")
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
        for schema in await schemas_with(conn, "requirements"):
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
        records = await read_topic(TOPIC_OF[service], cluster=stack.kafka)
        seen = Counter(v.decode() for r in records for k, v in r.headers if k == "ce_id")
        unpublished = ids - set(seen)
        assert not unpublished, (
            f"{len(unpublished)} acknowledged {service} events never reached Kafka"
        )
        duplicates += sum(seen[i] - 1 for i in ids)

    # 5. The dead-letter topics hold exactly the poison messages (none without poison).
    dead = await dead_letters(stack, poison)
    return {
        "acknowledged": len(acks),
        "unavailable_while_faulted": load.unavailable,
        "refused_by_rules": load.refused,
        "consumers_reconciled": len(expected),
        "requirements_on_the_board": len(board),
        "duplicates_on_the_wire": duplicates,
        "dead_lettered_poison": dead,
    }


async def dead_letters(stack: Stack, poison: bytes | None) -> int:
    admin = new_admin(stack.kafka)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if f".dlq.{stack.group_prefix}" in t]
    finally:
        await admin.close()
    assert topics, "the consumers created their dead-letter topics"
    if poison is None:  # a fault of the infrastructure is retried, never dead-lettered
        for topic in topics:  # (earlier runs' poison is met again from offset 0)
            messages = await read_topic(topic, cluster=stack.kafka)
            assert all(m.value.startswith(b"poison-") for m in messages), f"{topic}: nothing"
        return 0

    async def all_dead_lettered() -> bool:
        return all(
            [
                any(m.value == poison for m in await read_topic(t, cluster=stack.kafka))
                for t in topics
            ]
        )

    await eventually(all_dead_lettered, 60, "every consumer to dead-letter the poison")
    for topic in topics:
        messages = await read_topic(topic, cluster=stack.kafka)
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
