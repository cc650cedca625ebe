"""Running the projection service for tests: a real process on a free port, reading fresh
topics (or the real ones) with its own schema and consumer group prefix."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka import ConsumerRecord

from shared.auth import DEV_SECRET, mint_token
from shared.db import Database
from shared.domain import Metadata, StoredEvent
from shared.messaging.kafka import new_producer
from tests.infra import KAFKA, POSTGRES_URL, create_topic, eventually, produce


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(*roles: str, nation: str | None = None, hub: str | None = None) -> str:
    return mint_token(DEV_SECRET, f"test-{roles[0]}", list(roles), nation=nation, hub=hub)


def auth(*roles: str, **scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, **scope)}"}


def event(
    stream_id: str,
    version: int,
    event_type: str,
    data: dict[str, Any],
    *,
    actor: str = "tester",
    causation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> StoredEvent:
    return StoredEvent(
        position=version,
        stream_id=stream_id,
        stream_version=version,
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=1,
        data=data,
        meta=Metadata(
            actor=actor,
            correlation_id=str(uuid.uuid4()),
            causation_id=causation_id,
            occurred_at=occurred_at,
        ),
        recorded_at=datetime.now(UTC),
    )


@dataclass
class Topics:
    requests: str
    allocations: str
    deliveries: str

    @classmethod
    async def fresh(cls) -> Topics:
        return cls(
            await create_topic(prefix="proj.requests"),
            await create_topic(prefix="proj.allocations"),
            await create_topic(prefix="proj.deliveries"),
        )


async def republish(topic: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
    """Send records as a service published them (key, value, headers untouched) to `topic`:
    a write service's real output, fed to a projection on topics of its own."""
    producer = new_producer(KAFKA)
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(topic, value=r.value, key=r.key, headers=list(r.headers))
    finally:
        await producer.stop()


@dataclass
class Projection:
    url: str
    schema: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30)


@contextlib.asynccontextmanager
async def projection_service(
    topics: Topics | None = None, database_url: str = POSTGRES_URL, **env: str
) -> AsyncIterator[Projection]:
    """Start `python -m services.projection`; stop it (and drop its schemas) afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    port = free_port()
    environment = os.environ.copy() | {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "PROJECTION_PORT": str(port),
        "PROJECTION_SCHEMA": schema,
        "CONSUMER_GROUP_PREFIX": f"{schema}.",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "warning",
    }
    if topics is not None:
        environment |= {
            "REQUESTS_TOPIC": topics.requests,
            "ALLOCATIONS_TOPIC": topics.allocations,
            "DELIVERIES_TOPIC": topics.deliveries,
        }
    environment |= env
    process = subprocess.Popen([sys.executable, "-m", "services.projection"], env=environment)
    service = Projection(f"http://127.0.0.1:{port}", schema, environment, process)
    try:
        await eventually(lambda: _ready(service), timeout=60, what="the projection service")
        yield service
    finally:
        await service.client.aclose()
        process.terminate()
        process.wait(timeout=30)
        await drop_schemas(database_url, schema)


async def _ready(service: Projection) -> bool:
    if service.process.poll() is not None:
        raise RuntimeError(f"the projection service exited with {service.process.returncode}")
    try:
        response = await service.client.get("/admin/status", headers=auth("observer"))
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json()["running"]


async def drop_schemas(database_url: str, base: str) -> None:

    if not database_url.startswith("postgresql"):
        return
    db = Database(database_url, base)
    try:
        async with db.engine.begin() as conn:
            names = await conn.scalars(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": f"{base}%"},
            )
            for name in list(names):
                await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        await db.dispose()


@contextlib.asynccontextmanager
async def fed_projection(
    backend: str,
    folder: Path,
    *,
    requests: Sequence[StoredEvent],
    allocations: Sequence[StoredEvent],
    deliveries: Sequence[StoredEvent],
) -> AsyncIterator[Projection]:
    """A projection on `backend` (`postgresql`, or `sqlite` with its file in `folder`) on fresh
    topics, once it has applied these events. Allocations and deliveries go first: the topics
    are read in parallel, so the order they are applied in is not given anyway."""
    topics = await Topics.fresh()
    url = POSTGRES_URL if backend == "postgresql" else f"sqlite+aiosqlite:///{folder}/aidline.db"
    async with projection_service(topics, url, READ_YOUR_WRITES_TIMEOUT="20") as service:
        # Every stream's last event: a topic's partitions are applied side by side, so its
        # last event applied says nothing of the streams on its other partitions.
        lasts: dict[tuple[str, str], StoredEvent] = {}
        for topic, events in (
            (topics.deliveries, deliveries),
            (topics.allocations, allocations),
            (topics.requests, requests),
        ):
            await produce(topic, events)
            lasts |= {(topic, event.stream_id): event for event in events}
        for last in lasts.values():
            await read(service, "/decisions", "admin", after_event=str(last.event_id))
        yield service


async def read(service: Projection, path: str, role: str, **params: Any) -> Any:
    """A GET that must answer 200: its JSON, or its text (CSV). `scope`: the token's nation/hub."""
    scope = params.pop("scope", {})
    response = await service.client.get(path, params=params, headers=auth(role, **scope))
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    return response.text
