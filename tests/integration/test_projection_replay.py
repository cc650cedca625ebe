"""A rebuild's replay shared with a helper process (PostgreSQL, real broker): the partitions move
between the two while both write, and every event is applied exactly once; a helper stops when
its parent closes the pipe, as it does when the parent dies."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projection import tables as t
from services.projection.consumers import ReadModelWriter, consumers
from services.projection.generations import Generation
from services.projection.rebuild import ReplayHelpers, end_offsets
from services.projection.settings import ProjectionSettings
from shared.contracts import REGISTRIES
from shared.domain import StoredEvent
from shared.eventstore import EventStore, Transaction
from shared.messaging import envelope
from shared.messaging.consumer import Message
from tests.infra import POSTGRES_URL, eventually, produce
from tests.integration.test_projection import Scenario
from tests.projection import Topics, event


@pytest.fixture
async def settings(kafka: str) -> ProjectionSettings:
    topics = await Topics.fresh()
    return ProjectionSettings(
        database_url=POSTGRES_URL,
        kafka_bootstrap_servers=kafka,
        projection_schema=f"replay_{uuid.uuid4().hex[:8]}",
        consumer_group_prefix=f"replay-{uuid.uuid4().hex[:8]}.",
        requests_topic=topics.requests,
        allocations_topic=topics.allocations,
        deliveries_topic=topics.deliveries,
    )


@pytest.fixture
async def building(settings: ProjectionSettings) -> AsyncIterator[Generation]:
    (spec,) = consumers(settings)
    generation = Generation(2, settings, spec, lambda *_: None, building=True)
    await generation.prepare()
    try:
        yield generation
    finally:
        await generation.drop()


async def _publish(settings: ProjectionSettings, scenarios: list[Scenario]) -> None:
    await produce(settings.requests_topic, [e for s in scenarios for e in s.requests()])
    await produce(settings.allocations_topic, [e for s in scenarios for e in s.allocations()])
    await produce(settings.deliveries_topic, [e for s in scenarios for e in s.deliveries()])


async def _count(generation: Generation, table: sa.Table) -> int:
    async with generation.db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def _reached(generation: Generation, settings: ProjectionSettings) -> bool:
    targets = await end_offsets(settings.kafka_bootstrap_servers, list(settings.topics))
    stored = await generation.consumer.stored_offsets(list(targets))
    return all(stored.get(tp, 0) >= end for tp, end in targets.items())


async def test_a_helper_and_the_service_share_a_replay_exactly_once(
    settings: ProjectionSettings, building: Generation
) -> None:
    first, second = [Scenario() for _ in range(20)], [Scenario() for _ in range(20)]
    await _publish(settings, first)
    helpers = ReplayHelpers(settings, building.number, 1)
    await helpers.start()
    try:
        # The helper alone first: it takes every partition and applies the first scenarios.
        await eventually(lambda: _reached(building, settings), timeout=60)
        building.start()
        await asyncio.wait_for(building.consumer.assigned.wait(), 30)  # the partitions split
        await _publish(settings, second)
        await eventually(lambda: _reached(building, settings), timeout=60)
        assert helpers.running == 1
        assert building.consumer.applied > 0, "the service's own consumer took a share"
    finally:
        await helpers.stop()
    events = sum(len(s.requests() + s.allocations() + s.deliveries()) for s in first + second)
    assert await _count(building, t.audit) == events
    assert await _count(building, t.requirements) == len(first + second)
    async with building.db.engine.connect() as conn:
        delivered = await conn.scalar(sa.select(sa.func.sum(t.requirements.c.in_transit)))
        statuses = set((await conn.execute(sa.select(t.requirements.c.status))).scalars())
    assert delivered == 0 and len(statuses) == 1  # every requirement at the same point


async def test_a_helper_stops_when_its_parent_closes_the_pipe(
    settings: ProjectionSettings, building: Generation
) -> None:
    helpers = ReplayHelpers(settings, building.number, 2)
    await helpers.start()
    processes = list(helpers.processes)
    assert helpers.running == 2
    await helpers.stop()
    assert [p.returncode for p in processes] == [0, 0]  # they stopped; nothing had to kill them


class _Writers:
    """Writers of one generation, as a rebuild's service and helper processes are."""

    def __init__(self, settings: ProjectionSettings, generation: Generation) -> None:
        self.registries = {topic: REGISTRIES[own] for topic, own in settings.topics.items()}
        self.writer = ReadModelWriter(self.registries)
        self.store, self.generation = EventStore(generation.db), generation

    def message(self, topic: str, event: StoredEvent) -> Message:
        _key, value, headers = envelope.encode(event, self.registries[topic].source)
        return Message(topic, 0, event.position, envelope.decode(headers, value), raw=value)

    async def apply(self, message: Message, conn: AsyncConnection | None = None) -> None:
        async with contextlib.AsyncExitStack() as stack:
            if conn is None:
                conn = await stack.enter_async_context(self.generation.db.engine.connect())
            async with conn.begin():
                await self.writer(Transaction(conn, self.store), [message])

    async def race(self, first: Message, second: Message) -> None:
        """`first` applied and not yet committed while `second` is applied on another
        connection, which has to wait for it; then both commit."""
        engine = self.generation.db.engine
        async with engine.connect() as one, engine.connect() as other:
            await one.begin()
            await self.writer(Transaction(one, self.store), [first])
            waiting = asyncio.create_task(self.apply(second, other))
            await eventually(lambda: _waiting_on_a_lock(self.generation), what="a lock wait")
            await one.commit()
            await asyncio.wait_for(waiting, 30)

    async def requirements(self) -> list[sa.Row[Any]]:
        async with self.generation.db.engine.connect() as conn:
            return list(await conn.execute(sa.select(t.requirements)))


async def test_two_writers_creating_one_requirement_at_once_both_count(
    settings: ProjectionSettings, building: Generation
) -> None:
    """The service applies a requirement's submission while a helper applies an allocation
    to it: both would create its row. The second writer waits for the first, then adds to the
    row the first made; neither batch fails, nothing is lost."""
    scenario, writers = Scenario(), _Writers(settings, building)
    submitted = writers.message(settings.requests_topic, scenario.requests()[0])
    proposed = writers.message(settings.allocations_topic, scenario.allocations()[0])
    assert proposed.event.event_type == "allocation.proposed"
    await writers.race(submitted, proposed)
    assert [(r.requirement_id, r.requested, r.pledged) for r in await writers.requirements()] == [
        (scenario.requirement, scenario.quantity, scenario.quantity)
    ]


async def test_a_requirement_another_writer_created_meanwhile_is_kept(
    settings: ProjectionSettings, building: Generation
) -> None:
    """A batch that would have created a requirement another writer is creating (a delay of a
    planned shipment refers to it, and changes nothing on it) loads that writer's row instead,
    and leaves it as it is."""
    scenario, writers = Scenario(), _Writers(settings, building)
    planned = writers.message(settings.deliveries_topic, scenario.deliveries()[0])
    assert planned.event.event_type == "shipment.planned"  # no quantity moves: no requirement row
    delayed = writers.message(
        settings.deliveries_topic,
        event(scenario.shipment, 2, "shipment.delayed",
              {"reason": "weather", "new_eta": "2026-12-30"}),
    )  # fmt: skip
    await writers.apply(planned)
    await writers.race(writers.message(settings.requests_topic, scenario.requests()[0]), delayed)
    assert [(r.requirement_id, r.requested) for r in await writers.requirements()] == [
        (scenario.requirement, scenario.quantity)
    ]


async def _waiting_on_a_lock(generation: Generation) -> bool:
    async with generation.db.engine.connect() as conn:
        waiting = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return bool(waiting)
