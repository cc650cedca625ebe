"""The delivery service's web app (port 8003): wiring only."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.delivery import api, consumers
from services.delivery.settings import DeliverySettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "delivery"


def build_runtime(settings: DeliverySettings, *, schema: str = SCHEMA) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema=schema,
        migrations=MIGRATIONS,
        topic=topics.DELIVERIES,
        source="/aidline/delivery",
        consumers=consumers.CONSUMERS,
    )


def build_app(settings: DeliverySettings | None = None, *, schema: str = SCHEMA) -> FastAPI:
    """`schema` is the service's own database schema (tests give each run its own)."""
    settings = settings or DeliverySettings()
    return create_app(
        build_runtime(settings, schema=schema),
        title="Aidline delivery service",
        description="Shipments through the hubs to handover at the border.",
        routers=[api.router, api.dead_letter_routes],
    )


app = build_app()
