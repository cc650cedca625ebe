"""Stream tickets and stream caps (pure; a clock of the test's own)."""

from __future__ import annotations

import math

import pytest

from services.projection.stream_admission import (
    StreamsFull,
    StreamSlots,
    Tickets,
    seconds_left,
)
from shared.auth import Principal, Role


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _principal(sub: str = "anna", expires_at: float | None = None) -> Principal:
    return Principal(sub, frozenset({Role.OBSERVER}), expires_at=expires_at)


def test_a_ticket_opens_one_stream_for_its_principal() -> None:
    tickets = Tickets(60, clock=Clock())
    ticket, seconds = tickets.issue(_principal())
    assert seconds == 60 and len(ticket) >= 40  # 32 random bytes
    assert tickets.redeem(ticket) == _principal()
    assert tickets.redeem(ticket) is None  # spent
    assert tickets.redeem("made-up") is None


def test_a_ticket_expires_and_never_outlives_its_token() -> None:
    clock = Clock()
    tickets = Tickets(60, clock=clock)
    ticket, _ = tickets.issue(_principal())
    clock.now += 60
    assert tickets.redeem(ticket) is None
    short, seconds = tickets.issue(_principal(expires_at=clock.now + 5))
    assert seconds == 5
    clock.now += 5
    assert tickets.redeem(short) is None


def test_a_ticket_opens_a_stream_on_any_instance_sharing_the_secret() -> None:
    clock = Clock()
    secret = b"s" * 32
    issuer, other = Tickets(60, secret=secret, clock=clock), Tickets(60, secret=secret, clock=clock)
    principal = Principal("dora", frozenset({Role.DONOR}), nation="PL", expires_at=clock.now + 90)
    ticket, _ = issuer.issue(principal)
    taken = other.redeem(ticket)
    assert taken == principal and taken is not None and taken.expires_at == clock.now + 90
    assert taken.nation == "PL" and taken.roles == {Role.DONOR}
    assert other.redeem(ticket) is None  # once per instance
    assert Tickets(60, secret=b"x" * 32, clock=clock).redeem(ticket) is None  # another secret
    assert Tickets(60, clock=clock).redeem(issuer.issue(principal)[0]) is None  # its own
    body, _, signature = ticket.partition(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    assert other.redeem(f"{forged}.{signature}") is None
    assert other.redeem(body) is None and other.redeem("") is None


def test_tickets_taken_are_remembered_within_bounds() -> None:
    clock = Clock()
    tickets = Tickets(60, kept=3, clock=clock)
    issued = [tickets.issue(_principal(f"p{i}"))[0] for i in range(5)]
    assert all(tickets.redeem(t) is not None for t in issued)
    assert tickets.redeem(issued[4]) is None and tickets.redeem(issued[2]) is None
    # Past the bound the oldest are forgotten (only a flood within one minute gets there).
    assert tickets.redeem(issued[0]) is not None
    clock.now += 61
    assert len(tickets._taken) == 3
    assert tickets.redeem(tickets.issue(_principal())[0]) is not None  # sweeps the expired
    assert len(tickets._taken) == 1


def test_streams_are_capped_per_principal_and_in_all() -> None:
    slots = StreamSlots(per_principal=2, total=3)
    a1, _a2 = slots.take(_principal("a")), slots.take(_principal("a"))
    with pytest.raises(StreamsFull, match="a has 2 live streams") as full:
        slots.take(_principal("a"))
    assert full.value.retry_after > 0
    slots.take(_principal("b"))
    with pytest.raises(StreamsFull, match="serves 3 live streams"):
        slots.take(_principal("c"))
    a1.release()
    a1.release()  # once only
    assert slots.count == 2
    slots.take(_principal("c"))
    with pytest.raises(StreamsFull):
        slots.take(_principal("a"))


def test_seconds_left() -> None:
    clock = Clock()
    assert seconds_left(_principal(expires_at=clock.now + 7), clock) == 7
    assert seconds_left(_principal(), clock) == math.inf
