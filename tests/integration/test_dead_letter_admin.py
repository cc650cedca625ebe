"""`/admin/dead-letters` over HTTP, on a real service (delivery, in-process on PostgreSQL, its
consumer not polling): list, show, replay one, again (a no-op said so), a letter that fails
again (409, it stays), and the answers to selections that select nothing valid."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from fastapi import FastAPI

from services.delivery import tables
from shared.auth import Role
from shared.contracts.topics import REQUESTS
from shared.messaging import envelope
from shared.messaging.consumer import EventConsumer
from tests.authkit import token
from tests.infra import stored_event
from tests.integration.inprocess import running

ADMIN = {"Authorization": f"Bearer {token(Role.ADMIN, sub='ops')}"}


def _record(
    value: bytes, headers: list[tuple[str, bytes]], offset: int
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(REQUESTS, 0, offset, 0, 0, b"k", value, None, 1, len(value), headers)


async def _hold(consumer: EventConsumer, *records: Any) -> list[uuid.UUID]:
    """Dead letters of `consumer`, as its Applier holds them after the last attempt."""
    async with consumer.store.db.engine.begin() as conn:
        await consumer.dead_letters.hold(conn, [(r, ValueError("broken then"), 3) for r in records])
        ids = await conn.execute(sa.text("SELECT id FROM dead_letters ORDER BY original_offset"))
        return [row[0] for row in ids]


@pytest.fixture
async def delivery() -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    async with running("delivery") as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, app


async def test_an_operator_lists_shows_and_replays_dead_letters(
    delivery: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, app = delivery
    (consumer,) = app.state.runtime.consumers
    item = {"item_code": "DLQ-ITEM-1", "name": "x", "capability": "demining", "unit": "pcs",
            "eum_class": "enhanced", "substitutes": []}  # fmt: skip
    event = stored_event("catalogue", 7, item, event_type="catalogue.item_added")
    _, value, headers = envelope.encode(event, "/aidline/request")
    good, malformed = await _hold(
        consumer, _record(value, headers, 5), _record(b"not a CloudEvent", [], 6)
    )

    listed = (await client.get("/admin/dead-letters", headers=ADMIN)).json()
    assert listed["total"] == 2 and listed["next_offset"] is None
    assert listed["consumers"] == [{
        "consumer": consumer.name, "pending": 2, "replayed": 0,
        "errors": [{"error_type": "ValueError", "pending": 2}],
    }]  # fmt: skip
    assert [i["event_type"] for i in listed["items"]] == ["catalogue.item_added", None]
    shown = (await client.get(f"/admin/dead-letters/{good}", headers=ADMIN)).json()
    assert shown["envelope"]["data"]["item_code"] == "DLQ-ITEM-1"
    assert ["ce_type", "catalogue.item_added"] in shown["headers"]
    bad = (await client.get(f"/admin/dead-letters/{malformed}", headers=ADMIN)).json()
    assert bad["envelope"] is None and "ce_specversion" in bad["decode_error"]

    replayed = await client.post(
        "/admin/dead-letters/replay", json={"ids": [str(good)]}, headers=ADMIN
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["replayed"] == 1
    assert replayed.json()["results"][0]["outcome"] == "replayed"
    again = await client.post(
        "/admin/dead-letters/replay", json={"ids": [str(good)]}, headers=ADMIN
    )
    assert again.json()["results"][0]["outcome"] == "already-replayed"
    async with consumer.store.db.engine.connect() as conn:
        learnt = await conn.scalar(
            sa.select(tables.items.c.eum_class).where(tables.items.c.item_code == "DLQ-ITEM-1")
        )
    assert learnt == "enhanced"

    everything = await client.post(
        "/admin/dead-letters/replay", json={"consumer": consumer.name, "all": True}, headers=ADMIN
    )
    assert [r["outcome"] for r in everything.json()["results"]] == ["failed"]
    assert everything.json()["remaining"] == 0
    failing = await client.post(
        "/admin/dead-letters/replay", json={"ids": [str(malformed)]}, headers=ADMIN
    )
    assert failing.status_code == 409
    assert failing.headers["content-type"] == "application/problem+json"
    assert failing.json()["type"].endswith("/replay-failed")
    assert "EnvelopeError" in failing.json()["detail"]

    pending = (await client.get("/admin/dead-letters?state=pending", headers=ADMIN)).json()
    assert [i["letter_id"] for i in pending["items"]] == [str(malformed)]
    assert "EnvelopeError" in pending["items"][0]["replay_error"]
    done = (await client.get("/admin/dead-letters?state=replayed", headers=ADMIN)).json()
    assert [(i["letter_id"], i["replayed_by"]) for i in done["items"]] == [(str(good), "ops")]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"ids": [str(uuid.uuid4())]}, 404),
        ({"consumer": "nobody", "all": True}, 404),
        ({}, 422),
        ({"consumer": "delivery"}, 422),  # neither filters nor all
        ({"consumer": "delivery", "all": True, "topic": "t"}, 422),
        ({"ids": [str(uuid.uuid4())], "consumer": "delivery"}, 422),
        ({"ids": []}, 422),
        ({"consumer": "delivery", "since": "2026-01-01T00:00:00"}, 422),  # no time zone
        ({"consumer": "delivery", "all": True, "limit": 501}, 422),
    ],
)
async def test_a_selection_that_selects_nothing_valid_is_a_clear_problem(
    delivery: tuple[httpx.AsyncClient, FastAPI], body: dict[str, Any], status: int
) -> None:
    client, _ = delivery
    answer = await client.post("/admin/dead-letters/replay", json=body, headers=ADMIN)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_only_admins_see_or_replay_dead_letters(
    delivery: tuple[httpx.AsyncClient, FastAPI],
) -> None:
    client, _ = delivery
    planner = {"Authorization": f"Bearer {token(Role.PLANNER)}"}
    assert (await client.get("/admin/dead-letters", headers=planner)).status_code == 403
    answer = await client.post("/admin/dead-letters/replay", json={"ids": []}, headers=planner)
    assert answer.status_code == 403
    missing = await client.get(f"/admin/dead-letters/{uuid.uuid4()}", headers=ADMIN)
    assert missing.status_code == 404
