"""What every command handler receives and returns, in every service.

A handler is `async def handle(ctx, command) -> CommandResult`: `command` is a frozen dataclass
of the service's `commands.py`; `ctx` carries the unit of work and who is asking. It raises the
domain's errors (`shared.domain.errors`) only; the web layer answers for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.auth import Principal
from shared.domain import Metadata, VersionMismatch
from shared.eventstore import Transaction

D = TypeVar("D")
C = TypeVar("C")


@dataclass(frozen=True)
class CommandContext(Generic[D]):
    """The unit of work a command runs in, who sends it, what its events record, the version
    the caller expects (`If-Match`, None when not given) and the service's own collaborators
    (`deps`: e.g. the allocation service's planning step; None where a service has none)."""

    tx: Transaction
    principal: Principal
    meta: Metadata
    expected_version: int | None = None
    deps: D = None  # type: ignore[assignment]

    def check_version(self, current: int) -> None:
        """VersionMismatch (412) unless the caller expects no version or `current`."""
        ensure_version(self.expected_version, current)


@dataclass(frozen=True)
class CommandResult:
    """What a command handler returns; `body` replaces the default answer when given."""

    id: str
    version: int
    event_id: str | None = None
    status_code: int = 200
    body: dict[str, Any] | None = None


CommandHandler = Callable[[CommandContext[Any], C], Awaitable[CommandResult]]


def ensure_version(wanted: int | None, current: int) -> None:
    """VersionMismatch unless `wanted` is None or `current`."""
    if wanted is not None and wanted != current:
        raise VersionMismatch(current, wanted)
