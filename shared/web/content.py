"""Content-type checks: a body in a format the route does not read is answered 415, not 422."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from shared.web.problems import Problem


def require_content_type(*media_types: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: a non-empty body must be sent as one of `media_types`."""

    async def check(request: Request) -> None:
        has_body = request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        )
        if not has_body:
            return
        sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if sent not in media_types:
            raise Problem(
                415,
                "Unsupported media type",
                f"Send the body as {' or '.join(media_types)}, not {sent or '(none)'}.",
                kind="unsupported-media-type",
                errors=[{"field": "content-type", "message": f"expected {media_types[0]}"}],
            )

    return check


JSON = require_content_type("application/json")
# As a route parameter after the principal, so a missing token is 401 before any 415.
JsonBody = Annotated[None, Depends(JSON)]
