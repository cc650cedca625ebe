"""The request service's web app (port 8001)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.request.api import router
from services.request.consumers import CONSUMERS
from services.request.handlers import UnknownReferences
from services.request.settings import RequestSettings
from shared.messaging import topics
from shared.runtime import ServiceRuntime
from shared.web.app import create_app
from shared.web.problems import problem_for, problem_response

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


async def _unknown_references(request: Request, exc: Exception) -> JSONResponse:
    # `problem_for` names one field per InvalidInput; a decision's answer names every unknown id.
    assert isinstance(exc, UnknownReferences)
    problem = problem_for(exc)
    problem.errors = exc.errors
    return problem_response(problem, request)


def build_app(settings: RequestSettings | None = None, *, schema: str = "request") -> FastAPI:
    """`schema` is the database schema (PostgreSQL) or file suffix (SQLite); tests vary it."""
    settings = settings or RequestSettings()
    app = create_app(
        build_runtime(settings, schema=schema),
        title="Aidline request service",
        description="Needs, pledges, the item catalogue and the forum's decisions.",
        routers=[router],
    )
    app.add_exception_handler(UnknownReferences, _unknown_references)
    return app


app = build_app()
