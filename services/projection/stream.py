"""The live event stream behind `GET /events/stream`.

One tail task follows the active generation's `audit` table: woken after every committed batch,
it reads the new rows in apply order, keeps the most recent in a ring buffer and hands them to
every subscriber. A client that reconnects with `Last-Event-ID` gets what it missed from the
ring, or from the audit table when the ring has moved on. A subscriber that falls too far behind
is disconnected; its browser reconnects and resumes the same way. Each subscriber gets the
events it asked for as Server-Sent Events, their data shown as its roles allow.

Bounded: a resume reaches back at most `max_resume` events (older: 410, read the board
instead) and is read from the audit a page at a time, so what a resuming subscriber holds is
one page, whatever its depth; streams are capped per principal and in all (429,
`stream_admission.py`); a stream ends when its token expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from services.projection import tables as t
from services.projection.generations import Generation
from services.projection.pulse import wait
from services.projection.stream_admission import (
    Slot,
    StreamsFull,
    StreamSlots,
    Tickets,
    seconds_left,
)
from shared.auth import Principal
from shared.auth.visibility import shown_event
from shared.db import Database
from shared.supervision import reraise_cancellation
from shared.web.deps import BEARER_CHALLENGE, Authorize
from shared.web.problems import Problem

log = logging.getLogger(__name__)

PAGE = 1000
# A resume reads the audit this many events at a time: what one resuming subscriber holds.
REPLAY_PAGE = 200
# Resumes reading the audit at once; the others wait their turn a page at a time, so that many
# resuming subscribers leave the connection pool to the rest of the service.
REPLAY_READERS = 2


# The audit read after every commit, built once: built for each read, its select was a fifth
# of the tail's samples in py-spy.
_AFTER = (
    sa.select(t.audit)
    .where(t.audit.c.seq > sa.bindparam("after"))
    .order_by(t.audit.c.seq)
    .limit(sa.bindparam("limit"))
)
_BETWEEN = _AFTER.where(t.audit.c.seq <= sa.bindparam("upto"))


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


@dataclass
class Session:
    """One open stream: its slot, its subscription and where its resume starts. Closed once,
    by the stream's end or by the response around it, whichever comes first."""

    stream: EventStream
    slot: Slot
    subscription: Subscription
    principal: Principal
    ring: list[StreamEvent] = field(default_factory=list)  # a resume the ring still holds
    after: int | None = None  # a resume read from the audit: after this sequence number ...
    upto: int = 0  # ... up to this one; the subscription holds what comes later

    def close(self) -> None:
        self.stream.subscribers.discard(self.subscription)
        self.slot.release()


class ClosingEventSourceResponse(EventSourceResponse):
    """Closes its session however the response ends, even if the stream never started."""

    def __init__(self, session: Session, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.session.close()


class EventStream:
    def __init__(
        self,
        buffer_size: int,
        subscriber_queue: int = 2_000,
        *,
        max_resume: int = 10_000,
        slots: StreamSlots | None = None,
        tickets: Tickets | None = None,
    ) -> None:
        self.max_resume = max_resume
        self._replay_readers = asyncio.Semaphore(REPLAY_READERS)
        self.slots = slots or StreamSlots(per_principal=8, total=500)
        self.tickets = tickets or Tickets(seconds=60)
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
                reraise_cancellation()
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
    async def _read(db: Database, after: int, limit: int, upto: int | None = None) -> list[Any]:
        query, params = _AFTER, {"after": after, "limit": limit}
        if upto is not None:
            query, params = _BETWEEN, params | {"upto": upto}
        async with db.engine.connect() as conn:
            return list(await conn.execute(query, params))

    def _publish(self, event: StreamEvent) -> None:
        if len(self.ring) == self.ring.maxlen:
            self._seq_of.pop(self.ring[0].event_id, None)
        self.ring.append(event)
        self._seq_of[event.event_id] = event.seq
        self.last_seq = event.seq
        for subscriber in self.subscribers:
            subscriber.put(event)

    # -- subscribers -----------------------------------------------------------------------

    async def open(self, principal: Principal, resume: str | None) -> Session:
        """A stream for `principal`, resuming after the event `resume` (a Last-Event-ID) if
        given: 429 when the caps are reached, 410 when the resume is older than `max_resume`
        events or not known here, 422 when it is not an event id."""
        try:
            slot = self.slots.take(principal)
        except StreamsFull as exc:
            raise Problem(
                429, "Too many streams", str(exc), kind="too-many-streams",
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc  # fmt: skip
        # Subscribe before the resume is placed: the subscription then holds all after `upto`.
        subscription = Subscription(self.subscriber_queue)
        self.subscribers.add(subscription)
        session = Session(self, slot, subscription, principal)
        try:
            if resume:
                await self._place(session, resume)
            else:
                session.upto = self.last_seq
        except BaseException:
            session.close()
            raise
        return session

    async def _place(self, session: Session, resume: str) -> None:
        async with self._lock:
            session.upto = self.last_seq
            seq = self._seq_of.get(resume)
            if seq is not None:
                self._check_depth(session.upto - seq)
                session.ring = [e for e in self.ring if e.seq > seq]
                return
            db = self._db
        try:
            wanted = uuid.UUID(resume)
        except ValueError as exc:
            raise Problem(
                422, "Unprocessable content", "Last-Event-ID (or since) must be an event id.",
                errors=[{"field": "Last-Event-ID", "message": "not an event id (a UUID)"}],
            ) from exc  # fmt: skip
        seq = None
        if db is not None:
            async with db.engine.connect() as conn:
                seq = await conn.scalar(
                    sa.select(t.audit.c.seq).where(t.audit.c.event_id == wanted)
                )
        if seq is None:
            raise _resume_gone(f"Event {resume} is not one this stream can resume after.")
        self._check_depth(session.upto - int(seq))
        session.after = int(seq)

    def _check_depth(self, behind: int) -> None:
        if behind > self.max_resume:
            raise _resume_gone(
                f"The resume is {behind} events back; the stream replays at most {self.max_resume}."
            )

    async def _missed(self, session: Session) -> AsyncIterator[StreamEvent]:
        """What came after the resume point up to `session.upto`, a page at a time."""
        for event in session.ring:
            yield event
        after, db = session.after, self._db
        while after is not None and db is not None and after < session.upto:
            async with self._replay_readers:
                rows = await self._read(db, after, REPLAY_PAGE, upto=session.upto)
            if not rows:
                return
            for row in rows:
                yield _event(row)
            after = rows[-1].seq

    async def sse(
        self,
        session: Session,
        *,
        types: Collection[str] | None,
        subject: str | None,
    ) -> AsyncIterator[ServerSentEvent]:
        """The events of `types` (all when None) about `subject` (any when None), as the
        session's principal may see them: first what came after its resume point, then live
        ones, until the principal's token expires."""
        principal = session.principal

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

        expired = ServerSentEvent(event="expired", data="the token has expired")
        try:
            async for event in self._missed(session):
                if seconds_left(principal) <= 0:
                    yield expired
                    return
                if visible(event) and (frame := sse(event)):
                    yield frame
            yield ServerSentEvent(comment="live")
            queue = session.subscription.queue
            while not session.subscription.overflowed:
                try:
                    event = await asyncio.wait_for(queue.get(), _timeout(principal))
                except TimeoutError:
                    yield expired
                    return
                if event.seq > session.upto and visible(event) and (frame := sse(event)):
                    yield frame
            # Overflowed: ended here, the client resumes with Last-Event-ID (what it missed
            # comes from the ring or the audit). Logged, so that a client too slow for the
            # stream shows up somewhere other than in its own reconnects.
            log.warning(
                "event stream: %s fell %d events behind and was disconnected (it resumes "
                "with Last-Event-ID)", principal.sub, queue.maxsize,
            )  # fmt: skip
        finally:
            session.close()


def _timeout(principal: Principal) -> float | None:
    left = seconds_left(principal)
    return None if left == float("inf") else max(0.0, left)


def _resume_gone(why: str) -> Problem:
    return Problem(
        410,
        "Resume too old",
        f"{why} Read the current state from the read models (GET /board/requirements, "
        "/audit/{stream_id}) and open the stream again without Last-Event-ID or since.",
        kind="resume-too-old",
    )


class StreamAuthorize(Authorize):
    """As `Authorize`, or with a stream ticket (`?ticket=`) in place of the Authorization
    header: a browser's EventSource cannot send headers. A token in the URL is refused (it
    would be written to access logs); a ticket is good for one stream and a minute."""

    async def __call__(self, request: Request) -> Principal:
        ticket = request.query_params.get("ticket")
        if ticket is not None and "authorization" not in request.headers:
            stream: EventStream = request.app.state.runtime.stream
            principal = stream.tickets.redeem(ticket)
            if principal is None:
                raise Problem(
                    401, "Unauthorized",
                    "The stream ticket is unknown, used or expired; get a new one "
                    "(POST /events/stream/tickets).",
                    kind="invalid-ticket", headers=BEARER_CHALLENGE,
                )  # fmt: skip
            if not self.rule.allows(principal.roles):  # issued under this rule: never, but cheap
                raise Problem(403, "Forbidden", "This needs a reader role.", kind="forbidden-role")
            request.state.principal = principal
            return principal
        if "access_token" in request.query_params:
            raise Problem(
                401, "Unauthorized",
                "Tokens are not taken from the URL. Send Authorization: Bearer, or get a stream "
                "ticket (POST /events/stream/tickets) and pass it as ?ticket=.",
                kind="token-in-url", headers=BEARER_CHALLENGE,
            )  # fmt: skip
        return await super().__call__(request)
