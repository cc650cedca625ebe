"""The projection service's web app (port 8004)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.projection.settings import ProjectionSettings
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def build_runtime(settings: ProjectionSettings) -> ServiceRuntime:
    return ServiceRuntime(settings, schema="projection", migrations=MIGRATIONS)


def build_app(settings: ProjectionSettings | None = None) -> FastAPI:
    settings = settings or ProjectionSettings()
    return create_app(
        build_runtime(settings),
        title="Aidline projection service",
        description="Read models, the live event stream and the operators' dashboard.",
    )


app = build_app()
