"""Who may open a live stream, and how many: single-use stream tickets, and caps on the streams
open per principal and in all. Pure (no I/O); `stream.py` and the route use them.

A browser's EventSource cannot send an Authorization header, and a token in the URL would end
up in access logs, proxies and the browser's history. So the page trades its bearer token for a
ticket (`POST /events/stream/tickets`): good for one stream, for `STREAM_TICKET_SECONDS` (and
never beyond its token's expiry), bound to the principal that asked for it.

A ticket is signed, not stored (HMAC-SHA256 with `STREAM_TICKET_SECRET`, which every instance of
the projection shares): any instance behind the load balancer takes a ticket another issued. It
says what it is for (`aud: stream`: it opens a stream and nothing else; it is no bearer token),
whose it is, and until when. Single use is kept per instance: each remembers the tickets it
took until they expire, so one ticket opens at most one stream per instance within its minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.auth import Principal, Role

# Tickets remembered as taken at most (about 100 bytes each); the oldest go first. Each is good
# for a minute, so only a flood reaches this, and the rate limit on the route stops floods first.
TICKETS_KEPT = 10_000
AUDIENCE = "stream"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tickets:
    def __init__(
        self,
        seconds: float,
        *,
        secret: bytes | None = None,
        kept: int = TICKETS_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`secret`: shared by the instances (none: one of this process's own, so only it
        takes its tickets)."""
        self.seconds = seconds
        self.kept = kept
        self.clock = clock
        self._key = hashlib.sha256(
            b"aidline stream tickets\0" + (secret or secrets.token_bytes(32))
        ).digest()
        self._taken: OrderedDict[str, float] = OrderedDict()  # ticket id -> good until

    def issue(self, principal: Principal) -> tuple[str, float]:
        """A new ticket for `principal`, and how many seconds it is good for."""
        now = self.clock()
        until = now + self.seconds
        if principal.expires_at is not None:
            until = min(until, principal.expires_at)
        claims = {
            "aud": AUDIENCE,
            "jti": secrets.token_urlsafe(16),
            "until": until,
            "sub": principal.sub,
            "roles": sorted(principal.roles),
            "nation": principal.nation,
            "hub": principal.hub,
            "token_expires": principal.expires_at,
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}", max(0.0, until - now)

    def redeem(self, ticket: str) -> Principal | None:
        """The principal a ticket was issued to, once (None: forged, used or expired)."""
        claims = self._verified(ticket)
        now = self.clock()
        if claims is None or claims.get("aud") != AUDIENCE or not now < claims["until"]:
            return None
        self._forget_expired(now)
        if claims["jti"] in self._taken:
            return None
        while len(self._taken) >= self.kept:
            self._taken.popitem(last=False)
        self._taken[claims["jti"]] = claims["until"]
        return Principal(
            claims["sub"],
            frozenset(Role(r) for r in claims["roles"]),
            nation=claims["nation"],
            hub=claims["hub"],
            expires_at=claims["token_expires"],
        )

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def _verified(self, ticket: str) -> dict[str, Any] | None:
        body, _, signature = ticket.partition(".")
        if not signature or not hmac.compare_digest(self._sign(body), signature):
            return None
        try:  # signed by us: well formed, unless the format changed under it
            claims: dict[str, Any] = json.loads(_unb64(body))
            float(claims["until"])
        except (ValueError, KeyError, TypeError):
            return None
        return claims

    def _forget_expired(self, now: float) -> None:
        # Taken in about expiry order (same lifetime; a shorter token only ends one sooner), so
        # the expired ones are at the front, give or take a few that go with a later sweep.
        while self._taken:
            until = next(iter(self._taken.values()))
            if until > now:
                return
            self._taken.popitem(last=False)


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
