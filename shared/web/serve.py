"""Run one service under uvicorn: `python -m services.<name>`."""

from __future__ import annotations

import uvicorn

from shared.settings import ServiceSettings


def serve(app_path: str, settings: ServiceSettings) -> None:
    uvicorn.run(
        app_path,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # Fail fast on SIGTERM; acknowledged work is already durable in the store.
        timeout_graceful_shutdown=5,
    )
