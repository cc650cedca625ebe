"""The delivery service's web app (port 8003)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.delivery.settings import DeliverySettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: DeliverySettings) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema="delivery",
        migrations=MIGRATIONS,
        topic=topics.DELIVERIES,
        source="/aidline/delivery",
    )


def build_app(settings: DeliverySettings | None = None) -> FastAPI:
    settings = settings or DeliverySettings()
    return create_app(
        build_runtime(settings),
        title="Aidline delivery service",
        description="Shipments through the hubs to handover at the border.",
    )


app = build_app()
