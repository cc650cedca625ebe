"""Run one service under uvicorn: `python -m services.<name>`."""

from __future__ import annotations

import uvicorn

from shared.observability.logs import configure_logging, resolve_format
from shared.settings import ServiceSettings


def serve(app_path: str, settings: ServiceSettings) -> None:
    configure_logging(
        service=settings.service_name,
        level=settings.log_level,
        log_format=resolve_format(settings.log_format, settings.environment),
    )
    uvicorn.run(
        app_path,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the process's structured logging (shared.observability.logs)
        access_log=False,  # one access line per request comes from RequestObservability
        # No service speaks WebSocket (the live stream is server-sent events); uvicorn would
        # otherwise import a WebSocket library, where one is installed, at start (the
        # allocation service after the e2e run: 120.4 MB against 120.9-121.3).
        ws="none",
        # Fail fast on SIGTERM; acknowledged work is already durable in the store.
        timeout_graceful_shutdown=5,
    )
