"""The allocation service's web app (port 8002): wiring only."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.allocation import api
from services.allocation.consumers import consumers
from services.allocation.planning import Planning
from services.allocation.settings import AllocationSettings
from shared.contracts.allocations import registry as allocation_events
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(
    settings: AllocationSettings, planning: Planning, *, schema: str = "allocation"
) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        schema=schema,
        migrations=MIGRATIONS,
        topic=topics.ALLOCATIONS,
        source=allocation_events.source,
        consumers=consumers(planning),
    )


def build_app(settings: AllocationSettings | None = None, *, schema: str = "allocation") -> FastAPI:
    """`schema`: where the service keeps its tables (tests give each run its own)."""
    settings = settings or AllocationSettings()
    planning = Planning(settings)
    return create_app(
        build_runtime(settings, planning, schema=schema),
        title="Aidline allocation service",
        description="Matching confirmed pledges to endorsed needs.",
        routers=[api.router, api.dead_letter_routes],
        handler_deps=planning,
    )


app = build_app()
