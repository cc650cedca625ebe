"""The projection service's web app (port 8004): wiring only."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.projection.api import (
    STATIC,
    admin_router,
    dead_letter_routes,
    page_router,
    router,
    stream_router,
)
from services.projection.consumers import consumers
from services.projection.generations import MIGRATIONS, Generation, ReadModels
from services.projection.rebuild import Rebuilder
from services.projection.settings import ProjectionSettings
from services.projection.stream import EventStream
from services.projection.stream_admission import StreamSlots, Tickets
from shared.runtime import ServiceRuntime
from shared.web.app import create_app

log = logging.getLogger(__name__)


def ticket_secret(settings: ProjectionSettings) -> bytes | None:
    """What signs stream tickets: STREAM_TICKET_SECRET, else the HS256 token secret (every
    instance has it already), else none (each instance its own; tickets work on their issuer)."""
    if settings.stream_ticket_secret is not None:
        return settings.stream_ticket_secret.get_secret_value().encode()
    if not (settings.jwt_public_key_file or settings.jwt_jwks_file or settings.jwt_jwks_url):
        return settings.jwt_secret.encode()
    log.warning(
        "STREAM_TICKET_SECRET is not set: stream tickets open streams only on the instance that "
        "issued them; set it, the same on every projection instance"
    )
    return None


class ProjectionRuntime(ServiceRuntime):
    """The shared runtime plus the read models' generations, their rebuild and the live
    stream. The read models' consumer runs once per generation, so the shared runtime is given
    none of its own."""

    def __init__(self, settings: ProjectionSettings) -> None:
        super().__init__(settings, schema=settings.projection_schema, migrations=MIGRATIONS)
        (spec,) = consumers(settings)
        self.read_models = ReadModels(settings, self.db, spec)
        self.rebuilder = Rebuilder(self.read_models)
        self.stream = EventStream(
            settings.stream_buffer_size,
            max_resume=settings.stream_max_resume_events,
            slots=StreamSlots(settings.stream_max_per_principal, settings.stream_max_total),
            tickets=Tickets(settings.stream_ticket_seconds, secret=ticket_secret(settings)),
        )
        self.read_models.on_switch.append(self.stream.follow)
        self.read_models.on_switch.append(self._report_consumer)
        self.read_models.on_applied.append(self.stream.notify)

    def _report_consumer(self, new: Generation, _old: Generation | None) -> None:
        self.consumers = [new.consumer]  # what /readyz checks

    async def start(self) -> None:
        await super().start()
        await self.read_models.start()
        self.supervise("event-stream", self.stream.run)
        self.supervise("commits", self.read_models.follow_commits)

    async def stop(self) -> None:
        try:
            await self.rebuilder.stop()
            await self.read_models.stop()
        finally:  # the supervised tasks (the live stream's reader) end whatever failed above
            await super().stop()


def build_runtime(settings: ProjectionSettings) -> ProjectionRuntime:
    return ProjectionRuntime(settings)


def build_app(settings: ProjectionSettings | None = None) -> FastAPI:
    settings = settings or ProjectionSettings()
    runtime = build_runtime(settings)
    app = create_app(
        runtime,
        title="Aidline projection service",
        description="Read models, the live event stream and the operators' dashboard.",
        routers=(router, stream_router, admin_router, dead_letter_routes, page_router),
        handler_deps=runtime.rebuilder,
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


app = build_app()
