"""Who may open a live stream, and how many: single-use stream tickets, and caps on the streams
open per principal and in all. Pure (no I/O); `stream.py` and the route use them.

A browser's EventSource cannot send an Authorization header, and a token in the URL would end
up in access logs, proxies and the browser's history. So the page trades its bearer token for a
ticket (`POST /events/stream/tickets`): opaque, good for one stream, for `STREAM_TICKET_SECONDS`
(and never beyond its token's expiry), bound to the principal that asked for it.

Tickets live in the memory of the process that issued them: behind a load balancer with several
projection copies, send a client's ticket request and its stream to the same copy.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.auth import Principal

# Tickets kept at most (about 200 bytes each); the oldest go first. Each is good for a minute,
# so only a flood of requests reaches this, and the rate limit on the route stops floods first.
TICKETS_KEPT = 10_000


class Tickets:
    def __init__(
        self,
        seconds: float,
        *,
        kept: int = TICKETS_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seconds = seconds
        self.kept = kept
        self.clock = clock
        self._issued: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def issue(self, principal: Principal) -> tuple[str, float]:
        """A new ticket for `principal`, and how many seconds it is good for."""
        now = self.clock()
        self._forget_expired(now)
        while len(self._issued) >= self.kept:
            self._issued.popitem(last=False)
        until = now + self.seconds
        if principal.expires_at is not None:
            until = min(until, principal.expires_at)
        ticket = secrets.token_urlsafe(32)
        self._issued[ticket] = (principal, until)
        return ticket, max(0.0, until - now)

    def redeem(self, ticket: str) -> Principal | None:
        """The principal a ticket was issued to, once (None: unknown, used or expired)."""
        issued = self._issued.pop(ticket, None)
        if issued is None:
            return None
        principal, until = issued
        return principal if self.clock() < until else None

    def _forget_expired(self, now: float) -> None:
        # Tickets expire in issue order (same lifetime; a shorter token only ends one sooner),
        # so the expired ones are at the front, give or take a few that go with a later sweep.
        while self._issued:
            _, until = next(iter(self._issued.values()))
            if until > now:
                return
            self._issued.popitem(last=False)


class StreamsFull(Exception):
    """No stream may open now: answered 429 with Retry-After."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


# Streams stay open for hours, so there is no telling when a slot frees up; a client retrying
# after this long does no harm.
RETRY_AFTER_SECONDS = 30


class StreamSlots:
    """Caps on the streams open at once: per principal (its `sub`) and in all."""

    def __init__(self, per_principal: int, total: int) -> None:
        self.per_principal = per_principal
        self.total = total
        self._open: dict[str, int] = {}
        self.count = 0

    def take(self, principal: Principal) -> Slot:
        held = self._open.get(principal.sub, 0)
        if held >= self.per_principal:
            raise StreamsFull(
                f"{principal.sub} has {held} live streams open, the most one caller may have; "
                "close one first.",
                RETRY_AFTER_SECONDS,
            )
        if self.count >= self.total:
            raise StreamsFull(
                f"The service serves {self.count} live streams, the most it takes.",
                RETRY_AFTER_SECONDS,
            )
        self._open[principal.sub] = held + 1
        self.count += 1
        return Slot(self, principal.sub)

    def _release(self, sub: str) -> None:
        self.count -= 1
        left = self._open[sub] - 1
        if left:
            self._open[sub] = left
        else:
            del self._open[sub]


@dataclass
class Slot:
    slots: StreamSlots
    sub: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.slots._release(self.sub)


def seconds_left(principal: Principal, clock: Callable[[], float] = time.time) -> float:
    """How long `principal`'s token is still accepted (inf: it does not expire)."""
    if principal.expires_at is None:
        return math.inf
    return principal.expires_at - clock()
