"""Degrade, never stop: the four services start while the broker is down, answer reads, take
commands into their outboxes and accept a rebuild; once the broker is back, everything
acknowledged reaches the projection's read model exactly once.

Counts reconciled: acknowledged = stored = on the topic = visible in the read model (and in the
rebuilt generation), 0 lost, 0 applied twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.auth import DEV_SECRET, Role, mint_token
from shared.contracts.topics import REQUESTS
from shared.messaging.topics import EVENT_TOPICS, ensure_topics
from tests.e2e.reconcile import connect
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.e2e.test_faults import _broker
from tests.infra import KAFKA, eventually, read_topic

COMMANDS = 30


def _auth(role: Role, **scope: str) -> dict[str, str]:
    token = mint_token(DEV_SECRET, f"no-broker-{role}", [role], **scope)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def stack_without_broker(kafka: str) -> AsyncIterator[Stack]:
    # The topics exist (a broker that comes back has its data): what is proven is starting
    # without it, not creating topics late.
    await ensure_topics(KAFKA, EVENT_TOPICS)
    database_url = await create_database()
    # A short cap on the backoff: the services notice the broker's return within a second.
    stack = Stack(database_url, env_overrides={"KAFKA_RETRY_MAX_SECONDS": "1"})
    _broker("down")
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(s, degraded_ok=True) for s in SERVICES))
        yield stack
    finally:
        # Whether or not the test brought it back (pytest resumes a fixture after a failed
        # test as after a passed one): every later test needs the broker. `up` is idempotent.
        _broker("up")
        stack.stop_all()
        await drop_database(database_url)


async def test_services_start_and_take_commands_while_the_broker_is_down(
    stack_without_broker: Stack,
) -> None:
    stack = stack_without_broker
    async with httpx.AsyncClient(timeout=10) as client:
        # 1. Ready, degraded: 200 with the reason, the relay's real state, never a 503.
        for service in SERVICES:
            response = await client.get(stack.url(service) + "/readyz")
            body = response.json()
            assert response.status_code == 200 and body["status"] == "degraded", body
            assert body["checks"]["database"]["ok"] and not body["checks"]["kafka"]["ok"]
        relay = (await client.get(stack.url("request") + "/readyz")).json()["checks"]["relay"]
        assert relay["ok"] is False and relay["state"] in ("retrying", "starting"), relay

        # 2. Commands are acknowledged into the outbox; reads answer.
        submitted: dict[str, int] = {}
        event_ids: list[str] = []
        needed_by = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
        for n in range(COMMANDS):
            response = await client.post(
                stack.url("request") + "/requirements",
                json={
                    "item_code": "ART-155-HE",
                    "quantity": 10 + n,
                    "priority": 2,
                    "needed_by": needed_by,
                    "destination": "Operational Command East",
                    "justification": "broker down",
                },
                headers=_auth(Role.RECIPIENT) | {"Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code in (200, 201), response.text
            submitted[response.json()["id"]] = 10 + n
            event_ids.append(response.json()["event_id"])
        some = next(iter(submitted))
        read = await client.get(
            stack.url("request") + f"/requirements/{some}", headers=_auth(Role.OBSERVER)
        )
        assert read.status_code == 200, read.text
        board = await client.get(stack.url("projection") + "/board/requirements",
                                 headers=_auth(Role.OBSERVER))  # fmt: skip
        assert board.status_code == 200, board.text

        # 3. A rebuild asked for now waits for the broker (not failed, not stuck).
        rebuild = await client.post(
            stack.url("projection") + "/admin/rebuild",
            headers=_auth(Role.ADMIN) | {"Idempotency-Key": str(uuid.uuid4())},
        )
        assert rebuild.status_code == 202, rebuild.text
        generation = rebuild.json()["generation"]

        async def rebuild_waits() -> bool:
            status = (  # why it waits is for admins (docs/access.md)
                await client.get(
                    stack.url("projection") + "/admin/status", headers=_auth(Role.ADMIN)
                )
            ).json()["rebuild"]
            assert status["state"] == "building", status
            return str(status["error"]).startswith("waiting for Kafka")

        await eventually(rebuild_waits, 30, "the rebuild to say it waits for Kafka")

        # 4. The broker returns: everything catches up, and every service is fully ready.
        _broker("up")
        await asyncio.gather(*(stack.wait_ready(s, timeout=90) for s in SERVICES))

        async def swapped() -> bool:
            status = (
                await client.get(
                    stack.url("projection") + "/admin/status", headers=_auth(Role.OBSERVER)
                )
            ).json()
            assert status["rebuild"]["state"] != "failed", status["rebuild"]
            return bool(status["generation"] == generation)

        await eventually(swapped, 90, "the rebuild asked for while the broker was down")

    counts = await _reconcile(stack, submitted, event_ids)
    print("\nreconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))


async def _reconcile(stack: Stack, submitted: dict[str, int], ids: list[str]) -> dict[str, int]:
    conn = await connect(stack)
    try:
        stored = Counter(
            r["id"]
            for r in await conn.fetch(
                'SELECT event_id::text AS id FROM "request".events WHERE event_id::text = ANY($1)',
                ids,
            )
        )
        assert set(stored) == set(ids) and max(stored.values()) == 1, "stored once each"
        schema = await conn.fetchval(
            "SELECT schema_name FROM projection.generations WHERE state = 'active'"
        )
        applied: Counter[str] = Counter()

        async def all_visible() -> bool:
            nonlocal applied
            rows = await conn.fetch(
                f'SELECT event_id::text AS id FROM "{schema}".audit WHERE event_id::text = ANY($1)',
                ids,
            )
            applied = Counter(r["id"] for r in rows)
            return set(applied) == set(ids)

        await eventually(all_visible, 60, "every acknowledged event in the read model")
        assert max(applied.values()) == 1, "applied once each"
        rows = await conn.fetch(
            f'SELECT requirement_id, requested FROM "{schema}".requirements '
            "WHERE requirement_id = ANY($1)",
            list(submitted),
        )
        board: dict[str, Any] = {r["requirement_id"]: r["requested"] for r in rows}
        assert board == submitted, "the board shows each requirement once, as submitted"
    finally:
        await conn.close()
    on_topic = Counter(
        v.decode() for r in await read_topic(REQUESTS) for k, v in r.headers if k == "ce_id"
    )
    assert not set(ids) - set(on_topic), "every acknowledged event reached Kafka"
    return {
        "acknowledged": len(ids),
        "stored": len(stored),
        "on_the_topic": len(set(ids) & set(on_topic)),
        "visible_in_the_rebuilt_read_model": len(applied),
        "on_the_board": len(board),
        "lost": len(set(ids) - set(applied)),
        "doubled": sum(n - 1 for n in applied.values()),
    }
