"""The correlation id of the work in hand, so logs and new events carry it without plumbing.

An HTTP request binds it from `X-Correlation-ID` (or a new one); a consumer binds it from the
event it applies (its correlation id, or its ce_id when it has none) together with that event's id
as the causation id. Events appended while bound carry both unless their metadata says otherwise,
so one id follows a command from the first request through every service's events and logs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from shared.domain.events import Metadata

_correlation: ContextVar[str | None] = ContextVar("aidline_correlation_id", default=None)
_causation: ContextVar[str | None] = ContextVar("aidline_causation_id", default=None)


def correlation_id() -> str | None:
    """The correlation id bound to the current request or message, if any."""
    return _correlation.get()


def causation_id() -> str | None:
    """The id of the event being applied (set by consumers), if any."""
    return _causation.get()


def new_correlation_id() -> str:
    return str(uuid.uuid4())


@contextmanager
def bound(correlation: str | None, causation: str | None = None) -> Iterator[None]:
    """Bind the ids for the duration of the block (restored afterwards, even on errors)."""
    correlation_token = _correlation.set(correlation)
    causation_token = _causation.set(causation)
    try:
        yield
    finally:
        _causation.reset(causation_token)
        _correlation.reset(correlation_token)


def with_context(meta: Metadata) -> Metadata:
    """`meta` with the bound ids filled in where it has none."""
    correlation = meta.correlation_id or _correlation.get()
    causation = meta.causation_id or _causation.get()
    if (correlation, causation) == (meta.correlation_id, meta.causation_id):
        return meta
    return dataclasses.replace(meta, correlation_id=correlation, causation_id=causation)
