"""Who did what, in answer to what: the metadata every event stored by an HTTP command carries.

- actor: the token's principal (`Principal.actor`, e.g. `alice@PL`) → `ce_actor`.
- correlation id: the caller's `X-Correlation-ID`, else this request's id; it follows the work
  through every service (consumers copy it onto the events they cause) → `ce_correlationid`.
- causation id: this request's id (a fresh UUID, `X-Request-ID`) → `ce_causationid`.

The middleware echoes both ids on every response, errors included, so a caller can quote them.
"""

from __future__ import annotations

import re
import uuid

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal
from shared.domain import Metadata
from shared.web.problems import Problem, problem_response

CORRELATION_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
# Visible ASCII only: the id goes into Kafka headers, logs and response headers verbatim.
_VALID_ID = re.compile(r"[\x21-\x7e]{1,128}")


class CorrelationId:
    """ASGI middleware: gives each request its ids and echoes them on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        sent = dict(scope.get("headers") or []).get(CORRELATION_HEADER.lower().encode())
        correlation_id = sent.decode("latin-1") if sent is not None else request_id
        valid = _VALID_ID.fullmatch(correlation_id) is not None
        if not valid:
            correlation_id = request_id
        echo = [
            (CORRELATION_HEADER.encode(), correlation_id.encode()),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
        ]

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *echo]}
            await send(message)

        if not valid:
            problem = Problem(
                400,
                "Invalid X-Correlation-ID",
                "Use 1 to 128 visible ASCII characters, or leave the header out.",
                kind="invalid-correlation-id",
                errors=[{"field": "header.x-correlation-id", "message": "invalid id"}],
            )
            await problem_response(problem)(scope, receive, send_with_ids)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["correlation_id"] = correlation_id
        await self.app(scope, receive, send_with_ids)


def event_metadata(request: Request, principal: Principal) -> Metadata:
    """The metadata of the events this request's command stores (pass it to Repository.save)."""
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:  # an app built without the middleware (tests)
        request_id = request.state.request_id = str(uuid.uuid4())
    correlation_id = getattr(request.state, "correlation_id", None) or request_id
    return Metadata(actor=principal.actor, correlation_id=correlation_id, causation_id=request_id)
