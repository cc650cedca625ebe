"""The delivery service running for real: uvicorn on a free port, its own schema (PostgreSQL
and SQLite), the real broker with a consumer group of its own; allocation and pledge events are
produced onto the real topics with ids unique to the test.

The shared topics carry every earlier test run's history, which is none of these tests'
business: before the service starts, its consumer's offsets are stored in its own database at
the topics' current ends (the consumer trusts its database for offsets), so it reads only what
is produced from then on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from services.delivery.app import MIGRATIONS, build_app
from services.delivery.settings import DeliverySettings
from shared.auth import DEV_SECRET, mint_token
from shared.contracts.allocations import AllocationApproved, AllocationProposed
from shared.contracts.allocations import registry as allocations
from shared.contracts.requests import PledgeAnnounced
from shared.contracts.requests import registry as requests
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.domain import DomainEvent, EventRegistry, Metadata, StoredEvent
from shared.eventstore.tables import consumer_offsets
from shared.runtime import ServiceRuntime
from tests.infra import (
    POSTGRES_URL,
    end_offsets,
    eventually,
    header,
    produce,
    read_topic,
    start_at_the_end,
    unique_schema,
)


def token(role: str, *, nation: str | None = None, hub: str | None = None) -> dict[str, str]:
    sub = f"{role}-{nation or hub or 'x'}-tester"
    return {
        "Authorization": f"Bearer {mint_token(DEV_SECRET, sub, [role], nation=nation, hub=hub)}"
    }


PLANNER = token("planner")
RECIPIENT = token("recipient")
OBSERVER = token("observer")
FORUM = token("forum")
DONOR_DE = token("donor", nation="DE")
DONOR_FR = token("donor", nation="FR")
HUB_RZE = token("hub", hub="PL-RZE")
HUB_SUC = token("hub", hub="RO-SUC")


def stored(
    registry: EventRegistry,
    stream_id: str,
    version: int,
    event: DomainEvent,
    actor: str = "tester",
    correlation_id: str | None = None,
) -> StoredEvent:
    """An event as the producing service would have stored (and its relay published) it."""
    meta = Metadata(actor=actor, correlation_id=correlation_id or f"c-{stream_id}")
    new = registry.encode(event, meta)
    return StoredEvent(
        position=version,
        stream_id=stream_id,
        stream_version=version,
        event_id=new.event_id,
        event_type=new.event_type,
        schema_version=new.schema_version,
        data=new.data,
        meta=new.meta,
        recorded_at=datetime.now(UTC),
    )


@dataclass
class Delivery:
    """The running service, an HTTP client for it, and ways to feed and watch it."""

    client: httpx.AsyncClient
    runtime: ServiceRuntime

    async def plan(
        self,
        *,
        item_code: str = "ART-155-HE",
        quantity: int = 10,
        hub: str = "PL-RZE",
        donor: str = "DE",
    ) -> str:
        """Announce a pledge and propose + approve an allocation; wait for the shipment."""
        run = uuid.uuid4().hex[:12]
        pledge_id, allocation_id = f"P-{run}", f"A-{run}"
        await produce(
            REQUESTS, [stored(requests, pledge_id, 1, pledge(pledge_id, donor, item_code))]
        )
        proposed = proposal(allocation_id, pledge_id, item_code, quantity, hub)
        approved = AllocationApproved(approved_by="planner")
        await produce(
            ALLOCATIONS,
            [
                stored(allocations, allocation_id, 1, proposed),
                stored(allocations, allocation_id, 2, approved),
            ],
        )
        shipment_id = f"SHP-{allocation_id}"
        await self.wait_for(shipment_id)
        return shipment_id

    async def wait_for(self, shipment_id: str, status: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def there() -> bool:
            response = await self.client.get(f"/shipments/{shipment_id}", headers=PLANNER)
            found.update(response.json())
            return response.status_code == 200 and status in (None, found["status"])

        await eventually(there, what=f"shipment {shipment_id} ({status or 'any status'})")
        return found

    async def caught_up(self, topic: str) -> None:
        """Wait until the consumer has applied everything now on `topic`."""
        end = await end_offsets(topic)

        async def applied() -> bool:
            async with self.runtime.db.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(consumer_offsets).where(consumer_offsets.c.topic == topic)
                )
                done = {row.partition: row.next_offset for row in rows}
            return all(done.get(p, 0) >= offset for p, offset in end.items() if offset)

        await eventually(applied, what=f"the consumer to catch up with {topic}")

    async def published(self, shipment_id: str, *types: str) -> list[str]:
        """Wait until these event types of the shipment are on `aidline.deliveries`; all its
        event types there, in order."""
        seen: list[str] = []

        async def there() -> bool:
            records = await read_topic(DELIVERIES)
            mine = sorted(
                (r for r in records if r.key == shipment_id.encode()),
                key=lambda r: int(header(r, "ce_streamversion")),
            )
            seen[:] = [header(r, "ce_type") for r in mine]
            return all(t in seen for t in types)

        await eventually(there, what=f"{types} of {shipment_id} on {DELIVERIES}")
        return seen


def pledge(pledge_id: str, donor: str, item_code: str) -> PledgeAnnounced:
    return PledgeAnnounced(
        pledge_id=pledge_id,
        donor=donor,
        item_code=item_code,
        quantity=100,
        unit="units",
        source="stock",
        available_from=date(2026, 1, 1),
    )


def proposal(
    allocation_id: str, pledge_id: str, item_code: str, quantity: int, hub: str
) -> AllocationProposed:
    return AllocationProposed(
        allocation_id=allocation_id,
        requirement_id=f"R-{allocation_id}",
        pledge_id=pledge_id,
        item_code=item_code,
        quantity=quantity,
        hub=hub,
        handover_by=date(2026, 12, 31),
        rationale="test",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
async def delivery(
    request: pytest.FixtureRequest, kafka: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Delivery]:
    async with serve(request.param, kafka, tmp_path_factory) as service:
        yield service


@contextlib.asynccontextmanager
async def serve(
    backend: str, kafka: str, tmp_path_factory: pytest.TempPathFactory, **settings: Any
) -> AsyncIterator[Delivery]:
    """The delivery service on `backend` (postgres | sqlite), with `settings` overridden."""
    schema = unique_schema()
    sqlite = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('delivery')}/aidline.db"
    app = build_app(
        DeliverySettings(
            database_url=POSTGRES_URL if backend == "postgres" else sqlite,
            kafka_bootstrap_servers=kafka,
            consumer_group_prefix=f"{schema}-",
            environment="test",
            log_level="WARNING",
            **settings,
        ),
        schema=schema,
    )
    runtime: ServiceRuntime = app.state.runtime
    await start_at_the_end(runtime, MIGRATIONS)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server, task), what="the delivery service to start")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Delivery(client, runtime)
    finally:
        server.should_exit = True
        await task
        await runtime.db.drop_schema()
        await runtime.db.dispose()


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises what stopped it
        pytest.fail("the delivery service stopped while starting", pytrace=False)
    return server.started
