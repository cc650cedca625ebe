"""The token bucket behind the rate-limit hook, on a fake clock."""

from __future__ import annotations

import pytest

from shared.web import ratelimit
from shared.web.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_caller_waits_for_the_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.check("POST /imports", "alice") for _ in range(3)] == [0, 0, 0]
    assert limiter.check("POST /imports", "alice") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.check("POST /imports", "alice") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.check("POST /imports", "alice") == 0


def test_callers_and_routes_have_their_own_buckets() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    assert limiter.check("POST /imports", "alice") == 0
    assert limiter.check("POST /imports", "alice") > 0
    assert limiter.check("POST /imports", "bob") == 0
    assert limiter.check("POST /milestones/batch", "alice") == 0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.check("r", "alice")
    clock.now += 3600
    assert [limiter.check("r", "alice") > 0 for _ in range(3)] == [False, False, True]


def test_a_route_may_set_its_own_rate() -> None:
    limiter = RateLimiter(per_minute=60, burst=1, clock=Clock())
    assert [limiter.check("r", "a", per_minute=6, burst=2) for _ in range(2)] == [0, 0]
    assert limiter.check("r", "a", per_minute=6, burst=2) == pytest.approx(10.0)


def test_disabled_never_limits() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, enabled=False, clock=Clock())
    assert all(limiter.check("r", "a") == 0 for _ in range(10))


def test_memory_is_bounded_by_dropping_the_least_recently_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 2)
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    limiter.check("r", "a")
    limiter.check("r", "b")
    limiter.check("r", "a")  # a is now the most recent
    limiter.check("r", "c")  # drops b
    assert limiter.check("r", "a") > 0, "a's bucket was kept"
    assert limiter.check("r", "b") == 0, "b starts afresh"
