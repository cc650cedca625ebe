"""Who did what, in answer to what: the metadata every event stored by an HTTP command carries.

- actor: the token's principal (`Principal.actor`, e.g. `alice@PL`) → `ce_actor`.
- correlation id: the caller's `X-Correlation-ID`, else this request's id → `ce_correlationid`.
- causation id: this request's id (`X-Request-ID`) → `ce_causationid`.

The ids are set by `shared.observability.http.RequestObservability`, outermost on every app.
"""

from __future__ import annotations

import uuid

from fastapi import Request

from shared.auth import Principal
from shared.domain import Metadata
from shared.observability.context import correlation_id


def event_metadata(request: Request, principal: Principal) -> Metadata:
    """The metadata of the events this request's command stores (pass it to Repository.save)."""
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:  # an app built without the middleware (tests)
        request_id = request.state.request_id = str(uuid.uuid4())
    return Metadata(
        actor=principal.actor,
        correlation_id=correlation_id() or request_id,
        causation_id=request_id,
    )
