"""Rate-limit hook for endpoints where a flood would hurt (imports, batch milestones).

A token bucket per caller and route, kept in the process: each service instance limits on its
own, which is enough to stop one client from monopolising an instance; a fleet-wide quota would
belong in the gateway. Use it as a route dependency:

    @router.post("/imports/pledges", dependencies=[Depends(RateLimit())])

Rates come from the service settings (`rate_limit_per_minute`, `rate_limit_burst`) unless the
route gives its own. Over the limit: 429 problem+json with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from prometheus_client import Counter

from shared.web.deps import principal_or_none
from shared.web.problems import Problem

RATE_LIMITED = Counter("aidline_rate_limited_total", "Requests refused by a rate limit", ["route"])
# Buckets of callers idle long enough are dropped first; this bounds memory under many callers.
MAX_BUCKETS = 10_000


@dataclass
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` tokens per second; one request takes one."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token; returns 0 when allowed, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """The buckets of one app (kept on `app.state.rate_limiter`)."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.enabled = enabled
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def check(
        self, route: str, caller: str, *, per_minute: float | None = None, burst: int | None = None
    ) -> float:
        """Seconds to wait before `caller` may call `route` again (0: go ahead)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        key = (route, caller)
        bucket = self._buckets.get(key)
        if bucket is None:
            size = burst or self.burst
            bucket = TokenBucket((per_minute or self.per_minute) / 60, size, size, now)
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket.take(now)


class RateLimit:
    """Route dependency: 429 when this caller exceeds the route's rate.

    The caller is the token's subject when the request carries a valid token (so it works in
    front of or behind `Authorize`), else the client address.
    """

    def __init__(self, *, per_minute: float | None = None, burst: int | None = None) -> None:
        self.per_minute = per_minute
        self.burst = burst

    async def __call__(self, request: Request) -> None:
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is None:
            return
        route = getattr(request.scope.get("route"), "path", request.url.path)
        route_key = f"{request.method} {route}"
        wait = limiter.check(
            route_key, await _caller(request), per_minute=self.per_minute, burst=self.burst
        )
        if wait > 0:
            RATE_LIMITED.labels(route_key).inc()
            seconds = max(1, math.ceil(wait))
            raise Problem(
                429,
                "Too many requests",
                f"This endpoint is rate-limited; try again in {seconds} s.",
                kind="rate-limited",
                headers={"Retry-After": str(seconds)},
            )


async def _caller(request: Request) -> str:
    principal = await principal_or_none(request)
    if principal is not None:
        return f"sub:{principal.sub}"
    client = request.client.host if request.client else "unknown"
    return f"ip:{client}"
