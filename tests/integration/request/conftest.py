"""The request service over HTTP (its lifespan running: migrations, relay, consumer) against
real PostgreSQL and Kafka, in a schema and consumer group of its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.request.app import MIGRATIONS, build_app
from services.request.settings import RequestSettings
from shared.auth import DEV_SECRET, mint_token
from shared.db import Database
from shared.eventstore.tables import idempotency_keys
from shared.runtime import ServiceRuntime
from tests.infra import KAFKA, POSTGRES_URL, start_at_the_end, unique_schema

FUTURE = (datetime.now(UTC).date() + timedelta(days=90)).isoformat()


def auth(role: str, *, nation: str | None = None, sub: str | None = None) -> dict[str, str]:
    token = mint_token(DEV_SECRET, sub or f"{role}-tester", [role], nation=nation)
    return {"Authorization": f"Bearer {token}"}


RECIPIENT = auth("recipient")
FORUM = auth("forum")
ADMIN = auth("admin")
DONOR_PL = auth("donor", nation="PL", sub="pl-mod")
DONOR_DE = auth("donor", nation="DE", sub="de-bmvg")
OBSERVER = auth("observer")


def requirement_body(**overrides: Any) -> dict[str, Any]:
    return {
        "item_code": "ART-155-HE",
        "quantity": 100,
        "priority": 2,
        "needed_by": FUTURE,
        "destination": "Operational Command East",
        "justification": "Counter-battery fire",
    } | overrides


def pledge_body(**overrides: Any) -> dict[str, Any]:
    return {
        "donor": "PL",
        "item_code": "ART-155-HE",
        "quantity": 60,
        "source": "stock",
        "available_from": FUTURE,
        "value_eur": 270000.0,
        "source_url": "https://www.gov.pl/web/national-defence",
    } | overrides


@dataclass
class Service:
    client: httpx.AsyncClient
    runtime: ServiceRuntime

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
                   **kw: Any) -> httpx.Response:  # fmt: skip
        return await self.client.post(path, json=body, headers=headers, **kw)

    async def submit(self, **overrides: Any) -> str:
        answer = await self.post("/requirements", requirement_body(**overrides), RECIPIENT)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    async def pledge(self, headers: dict[str, str] = DONOR_PL, **overrides: Any) -> str:
        answer = await self.post("/pledges", pledge_body(**overrides), headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    async def snapshot(self) -> tuple[int, int]:
        """(store head, idempotency records): unchanged when a request changed nothing."""
        async with self.runtime.db.engine.connect() as conn:
            head = await self.runtime.store.head_position(conn)
            keys = await conn.scalar(sa.select(sa.func.count()).select_from(idempotency_keys))
        return head, int(keys or 0)


@contextlib.asynccontextmanager
async def running(url: str, **settings: Any) -> AsyncIterator[Service]:
    """The app with its lifespan, on a new schema (dropped afterwards)."""
    schema = unique_schema()
    config = RequestSettings(
        database_url=url,
        kafka_bootstrap_servers=KAFKA,
        consumer_group_prefix=f"{schema}-",
        environment="test",
        **settings,
    )
    app = build_app(config, schema=schema)
    try:
        # Its consumers read only what comes next: the shared topics hold every other test's
        # events (thousands, after the e2e suite), which a fresh consumer would replay first.
        await start_at_the_end(app.state.runtime, MIGRATIONS)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://request") as client:
                yield Service(client, app.state.runtime)
    finally:
        database = Database(url, schema)
        await database.drop_schema()
        await database.dispose()


@pytest.fixture(scope="module")
async def service(kafka: str) -> AsyncIterator[Service]:
    """One service on PostgreSQL per test module; tests use their own ids."""
    async with running(POSTGRES_URL) as svc:
        yield svc


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/aidline.db"
