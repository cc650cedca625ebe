"""The audit trail: who did what reaches Kafka as ce_actor, with the request's correlation and
causation ids, through the same path every service command takes (route → run_command →
Repository.save → store → relay → topic)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from shared.auth import AccessPolicy, Principal, Role, rule
from shared.commands import CommandResult
from shared.eventstore import Repository, Transaction
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.web.app import create_app
from shared.web.commands import run_command
from shared.web.correlation import event_metadata
from shared.web.deps import Authorize
from tests.authkit import bearer
from tests.infra import create_topic, eventually, header, read_topic
from tests.sample_domain import Ledger, registry

MIGRATIONS = Path(__file__).parents[2] / "services" / "request" / "migrations"
POLICY = AccessPolicy("test", {"ledgers.open": rule(Role.DONOR, description="open a ledger")})
ledgers = Repository(Ledger, registry)


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/ledgers/{ledger_id}")
    async def open_ledger(
        ledger_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(Authorize(POLICY, "ledgers.open"))],
    ) -> JSONResponse:
        async def handle(tx: Transaction) -> CommandResult:
            ledger = Ledger.open(ledger_id, owner=principal.sub)
            ledgers.save(tx, ledger, event_metadata(request, principal))
            return CommandResult(ledger.id, ledger.version)

        return await run_command(request, request.app.state.runtime.store, handle)

    return router


async def test_ce_actor_and_the_ids_reach_kafka(kafka: str, tmp_path: Path) -> None:
    topic = await create_topic(partitions=1)
    settings = ServiceSettings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/actor.db",
        kafka_bootstrap_servers=kafka,
        consumers_enabled=False,
    )
    runtime = ServiceRuntime(
        settings, schema="actor", migrations=MIGRATIONS, topic=topic, source="/aidline/test"
    )
    app = create_app(runtime, title="actor test", routers=[_router()])
    ledger_id = f"L-{uuid.uuid4().hex[:8]}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                f"/ledgers/{ledger_id}",
                headers=bearer(Role.DONOR, sub="warsaw-1") | {"X-Correlation-ID": "meeting-17"},
            )
        assert response.status_code == 200, response.text
        assert runtime.relay is not None
        relay = runtime.relay

        async def published() -> bool:
            return relay.position >= 1

        await eventually(published, what="the relay to publish the event")
    [record] = [r for r in await read_topic(topic) if header(r, "ce_subject") == ledger_id]
    assert header(record, "ce_type") == "ledger.opened"
    assert header(record, "ce_actor") == "warsaw-1@PL"
    assert header(record, "ce_correlationid") == "meeting-17"
    assert header(record, "ce_causationid") == response.headers["x-request-id"]
    assert header(record, "ce_id") == response.json()["event_id"]
