"""Who did what, in answer to what: the metadata every event stored by an HTTP command carries.

- actor: the token's principal (`Principal.actor`, e.g. `alice@PL`) -> `ce_actor`.
- correlation id: the caller's `X-Correlation-ID` (else a new one) -> `ce_correlationid`.
"""

from __future__ import annotations

import uuid

from fastapi import Request

from shared.auth import Principal
from shared.domain import Metadata

MAX_CORRELATION_ID = 200


def event_metadata(request: Request, principal: Principal) -> Metadata:
    """The metadata of the events this request's command stores (pass it to Repository.save)."""
    correlation = request.headers.get("x-correlation-id", "").strip()
    if not 0 < len(correlation) <= MAX_CORRELATION_ID:
        correlation = str(uuid.uuid4())
    return Metadata(actor=principal.actor, correlation_id=correlation)
