"""A live-stream subscriber that falls too far behind is disconnected, and its resume with
Last-Event-ID gives it everything after the last event it was sent, once and in order
(PostgreSQL: the stream follows a generation the projection's writer fills)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sse_starlette import ServerSentEvent

from services.projection import tables as t
from services.projection.consumers import ReadModelWriter, consumers
from services.projection.generations import Generation
from services.projection.settings import ProjectionSettings
from services.projection.stream import EventStream
from shared.auth import Principal, Role
from shared.contracts import REGISTRIES
from shared.contracts.topics import REQUESTS
from shared.domain import StoredEvent
from shared.eventstore import EventStore, Transaction
from shared.messaging import envelope
from shared.messaging.consumer import Message
from tests.infra import POSTGRES_URL, eventually
from tests.projection import event

QUEUE = 3  # events a subscriber may fall behind before it is disconnected
FORUM = Principal("test-forum", frozenset({Role.FORUM}))


@pytest.fixture
async def generation() -> AsyncIterator[Generation]:
    settings = ProjectionSettings(
        database_url=POSTGRES_URL,
        projection_schema=f"overflow_{uuid.uuid4().hex[:8]}",
        consumer_group_prefix="overflow.",
        requests_topic="overflow.requests",  # nothing consumes: the test writes the events
        allocations_topic="overflow.allocations",
        deliveries_topic="overflow.deliveries",
    )
    (spec,) = consumers(settings)
    generation = Generation(1, settings, spec, lambda *_: None)
    await generation.prepare()
    try:
        yield generation
    finally:
        await generation.drop()


def _submitted(n: int) -> StoredEvent:
    requirement = f"REQ-OF-{n}-{uuid.uuid4().hex[:6]}"
    return event(requirement, 1, "requirement.submitted", {
        "requirement_id": requirement, "item_code": "AD-IRIST-SLM", "quantity": n,
        "unit": "systems", "priority": 1, "needed_by": "2026-12-24", "destination": "Kyiv",
        "justification": "stream overflow"})  # fmt: skip


async def _commit(generation: Generation, events: list[StoredEvent]) -> None:
    """Each event its own batch, as the consumer applies a slow trickle."""
    registry = REGISTRIES[REQUESTS]
    writer = ReadModelWriter({"overflow.requests": registry})
    store = EventStore(generation.db)
    for offset, stored in enumerate(events):
        _key, value, headers = envelope.encode(stored, registry.source)
        message = Message(
            "overflow.requests", 0, offset, envelope.decode(headers, value), raw=value
        )
        async with generation.db.engine.begin() as conn:
            await writer(Transaction(conn, store), [message])


async def _ids(frames: AsyncIterator[ServerSentEvent]) -> list[str]:
    return [str(frame.id) async for frame in frames]


async def _published(stream: EventStream, generation: Generation, event_id: uuid.UUID) -> bool:
    async with generation.db.engine.connect() as conn:
        seq = await conn.scalar(sa.select(t.audit.c.seq).where(t.audit.c.event_id == event_id))
    return seq is not None and stream.last_seq >= seq


async def test_a_subscriber_too_far_behind_is_cut_off_and_resumes_where_it_was(
    generation: Generation,
) -> None:
    stream = EventStream(buffer_size=100, subscriber_queue=QUEUE)
    await stream.follow(generation)
    tail = asyncio.create_task(stream.run())
    try:
        frames = stream.sse(await stream.open(FORUM, None), types=None, subject=None)
        assert (await anext(frames)).comment == "live"
        first, *flood = [_submitted(n) for n in range(1, 12)]
        await _commit(generation, [first])
        stream.notify()  # what the commit's announcement does in the service
        assert (await asyncio.wait_for(anext(frames), 10)).id == str(first.event_id)

        # Ten more while the subscriber reads nothing: more than its queue holds.
        await _commit(generation, flood)
        stream.notify()
        last = flood[-1].event_id
        await eventually(lambda: _published(stream, generation, last), 10, "the tail's read")
        # The stream ends: the subscriber is cut off (a stream that went on would time out).
        sent = await asyncio.wait_for(_ids(frames), 10)
        assert len(sent) < len(flood)
        assert not stream.subscribers  # its subscription went with it

        # Its browser resumes after the last event it got: the rest, once, in order.
        resumed = stream.sse(
            await stream.open(FORUM, sent[-1] if sent else str(first.event_id)),
            types=None,
            subject=None,
        )
        rest = []
        async for frame in resumed:
            if frame.comment == "live":
                break
            rest.append(frame.id)
        assert sent + rest == [str(e.event_id) for e in flood]
    finally:
        tail.cancel()
        await asyncio.gather(tail, return_exceptions=True)
