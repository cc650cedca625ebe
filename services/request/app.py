"""The request service's web app (port 8001)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.request.api import dead_letter_routes, router
from services.request.consumers import CONSUMERS
from services.request.settings import RequestSettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: RequestSettings, *, schema: str = "request") -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema=schema,
        migrations=MIGRATIONS,
        topic=topics.REQUESTS,
        source="/aidline/request",
        consumers=CONSUMERS,
    )


def build_app(settings: RequestSettings | None = None, *, schema: str = "request") -> FastAPI:
    """`schema` is the database schema (PostgreSQL) or file suffix (SQLite); tests vary it."""
    settings = settings or RequestSettings()
    return create_app(
        build_runtime(settings, schema=schema),
        title="Aidline request service",
        description="Needs, pledges, the item catalogue and the forum's decisions.",
        routers=[router, dead_letter_routes],
    )


app = build_app()
