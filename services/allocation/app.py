"""The allocation service's web app (port 8002)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.allocation.settings import AllocationSettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: AllocationSettings) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema="allocation",
        migrations=MIGRATIONS,
        topic=topics.ALLOCATIONS,
        source="/aidline/allocation",
    )


def build_app(settings: AllocationSettings | None = None) -> FastAPI:
    settings = settings or AllocationSettings()
    return create_app(
        build_runtime(settings),
        title="Aidline allocation service",
        description="Matching confirmed pledges to endorsed needs.",
    )


app = build_app()
