"""The four services in-process (ASGI) on real PostgreSQL, each in a schema of its own, with
relay and consumers off: for tests of the HTTP edge that need no events to flow."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.allocation.app import build_app as allocation_app
from services.allocation.settings import AllocationSettings
from services.delivery.app import build_app as delivery_app
from services.delivery.settings import DeliverySettings
from services.projection.app import build_app as projection_app
from services.projection.settings import ProjectionSettings
from services.request.app import build_app as request_app
from services.request.settings import RequestSettings
from shared.db import Database
from tests.infra import POSTGRES_URL, unique_schema

Build = Callable[..., FastAPI]  # (schema, **settings overrides)


def _common(schema: str, **overrides: Any) -> dict[str, Any]:
    return {
        "database_url": POSTGRES_URL,
        "environment": "test",
        "relay_enabled": False,
        "consumers_enabled": False,
        "consumer_group_prefix": f"{schema}-",
        "rate_limit_enabled": False,
    } | overrides


BUILDERS: dict[str, Build] = {
    "request": lambda s, **o: request_app(RequestSettings(**_common(s, **o)), schema=s),
    "allocation": lambda s, **o: allocation_app(AllocationSettings(**_common(s, **o)), schema=s),
    "delivery": lambda s, **o: delivery_app(DeliverySettings(**_common(s, **o)), schema=s),
    # `?after_event=` of an event never applied waits, then answers 504 as the contract says.
    "projection": lambda s, **o: projection_app(
        ProjectionSettings(
            **_common(s, **{"projection_schema": s, "read_your_writes_timeout": 0.01} | o)
        )
    ),
}


async def _clean(name: str, schema: str) -> None:
    db = Database(POSTGRES_URL, schema)
    try:
        if name == "projection":
            # Each generation keeps its read models in a schema of its own, named after the base.
            for generation in range(1, 4):
                await Database(POSTGRES_URL, f"{schema}_g{generation}").drop_schema()
        await db.drop_schema()
    finally:
        await db.dispose()


@asynccontextmanager
async def running(name: str, **settings: Any) -> AsyncIterator[FastAPI]:
    """Service `name` started (migrated) in a fresh schema; the schema is dropped after.
    `settings` override the test defaults."""
    schema = unique_schema()
    app = BUILDERS[name](schema, **settings)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        await _clean(name, schema)
