"""The live event stream behind `GET /events/stream`.

One tail task follows the active generation's `audit` table: woken after every committed batch,
it reads the new rows in apply order, keeps the most recent in a ring buffer and hands them to
every subscriber. A client that reconnects with `Last-Event-ID` gets what it missed from the
ring, or from the audit table when the ring has moved on. A subscriber that falls too far behind
is disconnected; its browser reconnects and resumes the same way. Each subscriber gets the
events it asked for as Server-Sent Events, their data shown as its roles allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sse_starlette import ServerSentEvent

from services.projection import tables as t
from services.projection.generations import Generation
from services.projection.pulse import wait
from shared.auth import Principal, TokenError
from shared.auth.visibility import shown_event
from shared.db import Database
from shared.web.deps import BEARER_CHALLENGE, Authorize
from shared.web.problems import Problem

log = logging.getLogger(__name__)

PAGE = 1000
MAX_REPLAY = 50_000  # a resume further back than this starts from the newest events


@dataclass(frozen=True)
class StreamEvent:
    seq: int
    event_id: str
    event_type: str
    subject: str
    scope_hub: str | None
    scope_donor: str | None
    record: dict[str, Any]  # envelope and data, as sent


def _event(row: Any) -> StreamEvent:
    record = {
        "id": str(row.event_id),
        "type": row.event_type,
        "source": row.source,
        "subject": row.stream_id,
        "time": row.time.isoformat(),
        "actor": row.actor,
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "stream_version": row.stream_version,
        "schema_version": row.schema_version,
        "topic": row.topic,
        "partition": row.partition,
        "offset": row.offset,
        "data": row.data,
    }
    return StreamEvent(
        row.seq,
        str(row.event_id),
        row.event_type,
        row.stream_id,
        row.scope_hub,
        row.scope_donor,
        record,
    )


class Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def put(self, event: StreamEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventStream:
    def __init__(self, buffer_size: int, subscriber_queue: int = 2_000) -> None:
        self.ring: deque[StreamEvent] = deque(maxlen=buffer_size)
        self._seq_of: dict[str, int] = {}
        self.subscribers: set[Subscription] = set()
        self.subscriber_queue = subscriber_queue
        self.last_seq = 0
        self._db: Database | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- following the active generation ---------------------------------------------------

    async def follow(self, new: Generation, _old: Generation | None = None) -> None:
        """Tail `new`'s audit from where the live stream is now (no history is re-sent)."""
        async with self._lock:
            last = self.ring[-1].event_id if self.ring else None
            async with new.db.engine.connect() as conn:
                seq = None
                if last is not None:
                    seq = await conn.scalar(
                        sa.select(t.audit.c.seq).where(t.audit.c.event_id == uuid.UUID(last))
                    )
                if seq is None:
                    seq = await conn.scalar(sa.select(sa.func.max(t.audit.c.seq)))
            self._db, self.last_seq = new.db, int(seq or 0)
            self.ring.clear()
            self._seq_of.clear()

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await wait(self._wake, 1.0)
            self._wake.clear()
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event stream: reading the audit failed; retrying")
                await asyncio.sleep(1.0)

    async def _drain(self) -> None:
        async with self._lock:
            while self._db is not None:
                rows = await self._read(self._db, self.last_seq, PAGE)
                for row in rows:
                    self._publish(_event(row))
                if len(rows) < PAGE:
                    return

    @staticmethod
    async def _read(db: Database, after: int, limit: int) -> list[Any]:
        async with db.engine.connect() as conn:
            result = await conn.execute(
                sa.select(t.audit).where(t.audit.c.seq > after).order_by(t.audit.c.seq).limit(limit)
            )
            return list(result)

    def _publish(self, event: StreamEvent) -> None:
        if len(self.ring) == self.ring.maxlen:
            self._seq_of.pop(self.ring[0].event_id, None)
        self.ring.append(event)
        self._seq_of[event.event_id] = event.seq
        self.last_seq = event.seq
        for subscriber in self.subscribers:
            subscriber.put(event)

    # -- subscribers -----------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        subscription = Subscription(self.subscriber_queue)
        self.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self.subscribers.discard(subscription)

    async def missed(self, last_event_id: str) -> tuple[list[StreamEvent], int]:
        """What came after `last_event_id`, up to now, and the sequence number it ends at.

        Subscribe first, then call this: the subscription then holds everything after `upto`.
        """
        async with self._lock:
            upto = self.last_seq
            seq = self._seq_of.get(last_event_id)
            if seq is not None:
                return [e for e in self.ring if e.seq > seq], upto
            db = self._db
        if db is None:
            return [], upto
        try:
            wanted = uuid.UUID(last_event_id)
        except ValueError:
            return [], upto
        async with db.engine.connect() as conn:
            seq = await conn.scalar(sa.select(t.audit.c.seq).where(t.audit.c.event_id == wanted))
        if seq is None or upto - seq > MAX_REPLAY:
            return [], upto
        events: list[StreamEvent] = []
        after = int(seq)
        while after < upto:
            rows = await self._read(db, after, PAGE)
            if not rows:
                break
            events.extend(_event(r) for r in rows if r.seq <= upto)
            after = rows[-1].seq
        return events, upto

    async def sse(
        self,
        principal: Principal,
        *,
        types: Collection[str] | None,
        subject: str | None,
        resume: str | None,
    ) -> AsyncIterator[ServerSentEvent]:
        """The events of `types` (all when None) about `subject` (any when None), as `principal`
        may see them: first what came after `resume` (a Last-Event-ID), then live ones."""

        def visible(event: StreamEvent) -> bool:
            return (types is None or event.event_type in types) and (
                subject is None or event.subject == subject
            )

        def sse(event: StreamEvent) -> ServerSentEvent | None:
            record = shown_event(
                principal, event.event_type, event.record, hub=event.scope_hub,
                donor=event.scope_donor,
            )  # fmt: skip
            if record is None:  # not this principal's to see: not sent
                return None
            return ServerSentEvent(data=json.dumps(record, default=str), id=event.event_id)

        with self.subscribe() as subscription:
            upto = 0
            if resume:
                missed, upto = await self.missed(resume)
                for event in missed:
                    if visible(event) and (frame := sse(event)):
                        yield frame
            yield ServerSentEvent(comment="live")
            while not subscription.overflowed:
                event = await subscription.queue.get()
                if event.seq > upto and visible(event) and (frame := sse(event)):
                    yield frame


class StreamAuthorize(Authorize):
    """As `Authorize`, and also accepts `?access_token=`: a browser's EventSource cannot send
    an Authorization header. (Only the stream takes a token in the URL.)"""

    async def __call__(self, request: Request) -> Principal:
        token = request.query_params.get("access_token")
        if token and "authorization" not in request.headers:
            try:
                principal: Principal = request.app.state.verifier.verify(token)
            except TokenError as exc:
                raise Problem(
                    401, "Unauthorized", f"The access token is not valid: {exc}.",
                    headers=BEARER_CHALLENGE,
                ) from exc  # fmt: skip
            if not self.rule.allows(principal.roles):
                raise Problem(403, "Forbidden", "This needs a reader role.", kind="forbidden-role")
            request.state.principal = principal
            return principal
        return await super().__call__(request)
