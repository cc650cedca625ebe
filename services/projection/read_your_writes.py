"""Read-your-writes: `?after_event=<event id>` on any GET answers only once the active
generation has applied that event (waiting up to `READ_YOUR_WRITES_TIMEOUT`, else 504)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import Depends, Query, Request

from services.projection.generations import ReadModels
from services.projection.pulse import wait
from services.projection.settings import ProjectionSettings
from shared.web.deps import RuntimeDep, authenticate
from shared.web.problems import Problem


async def applied(models: ReadModels, event_id: uuid.UUID, seconds: float) -> bool:
    """Wait up to `seconds` until the active generation has applied `event_id`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        wake = models.commits.next()
        if await models.current.processed(event_id):
            return True
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        await wait(wake, min(remaining, 0.5))


async def read_your_writes(
    request: Request,
    runtime: RuntimeDep,
    after_event: Annotated[
        uuid.UUID | None,
        Query(description="Answer only once this event is applied (waits up to 5 s, else 504)"),
    ] = None,
) -> None:
    """`?after_event=<event id>` on any GET: wait until the projection has applied it."""
    if after_event is None:
        return
    await authenticate(request)  # never make an unauthenticated caller wait
    settings: ProjectionSettings = runtime.settings  # type: ignore[assignment]
    models: ReadModels = runtime.read_models  # type: ignore[attr-defined]
    if not await applied(models, after_event, settings.read_your_writes_timeout):
        raise Problem(
            504,
            "Not yet applied",
            f"Event {after_event} was not applied within {settings.read_your_writes_timeout:g} s;"
            " retry, or check GET /admin/status for lag.",
            kind="event-not-applied",
        )


AfterEvent = Annotated[None, Depends(read_your_writes)]
