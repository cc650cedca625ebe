"""The request service's web app (port 8001)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.request.settings import RequestSettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: RequestSettings) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema="request",
        migrations=MIGRATIONS,
        topic=topics.REQUESTS,
        source="/aidline/request",
    )


def build_app(settings: RequestSettings | None = None) -> FastAPI:
    settings = settings or RequestSettings()
    return create_app(
        build_runtime(settings),
        title="Aidline request service",
        description="Needs, pledges, the item catalogue and the forum's decisions.",
    )


app = build_app()
