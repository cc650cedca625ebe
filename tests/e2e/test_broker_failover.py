"""A broker lost loses nothing (DESIGN.md §6, docs/scaling.md): the four services run against
a three-broker cluster of their own with replication factor 3, min.insync.replicas 2 and
acks=all. Under a steady load of commands the broker leading the most partitions is killed -9,
later restarted, then another is killed; the counts reconcile as in the other fault tests
(acknowledged = stored = on Kafka = in every read model; nothing lost, nothing doubled).

It also measures what the users notice, printed for docs/scaling.md: from the first kill to the
end, the longest time nothing new became visible in the read models while commands were being
acknowledged (the stall), and the p99 and the maximum from acknowledgement to visibility."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.messaging.kafka import new_admin
from shared.messaging.topics import MIN_INSYNC, topic_configs
from tests.brokers import CLUSTER_PORT, LocalKafka
from tests.e2e.load import Ack, Load
from tests.e2e.reconcile import connect, reconcile, schemas_with
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.infra import eventually

pytestmark = pytest.mark.timeout(420)

EVENT_TOPICS = (REQUESTS, ALLOCATIONS, DELIVERIES)


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalKafka]:
    brokers = LocalKafka(tmp_path_factory.mktemp("kafka3"), CLUSTER_PORT, nodes=3)
    await brokers.up()
    try:
        yield brokers
    finally:
        await brokers.down()


@pytest.fixture
async def replicated_stack(cluster: LocalKafka) -> AsyncIterator[Stack]:
    database_url = await create_database()
    stack = Stack(
        database_url,
        kafka=cluster.bootstrap,
        env_overrides={
            "AUTO_APPROVE": "true",  # work flows on to the delivery service by itself
            "KAFKA_REPLICATION_FACTOR": "3",
            "KAFKA_MIN_INSYNC_REPLICAS": "2",
        },
    )
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(s, timeout=120) for s in SERVICES))
        yield stack
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def _partitions(kafka: str) -> list[dict[str, object]]:
    """Every partition of every topic (internal ones included): leader, replicas, in sync."""
    admin = new_admin(kafka)
    await admin.start()
    try:
        return [
            partition | {"topic": topic["topic"]}
            for topic in await admin.describe_topics()
            for partition in topic["partitions"]
        ]
    finally:
        await admin.close()


async def _busiest_leader(cluster: LocalKafka, alive: set[int]) -> int:
    leaders = Counter(p["leader"] for p in await _partitions(cluster.bootstrap))
    return max(alive, key=lambda node: leaders[node])


async def _all_in_sync(cluster: LocalKafka) -> bool:
    return all(
        len(p["isr"]) == len(p["replicas"])  # type: ignore[arg-type]
        for p in await _partitions(cluster.bootstrap)
    )


@dataclass
class Visibility:
    """When each event first showed in the projection's read models: its live generation's
    audit table (one row per event applied), polled every 50 ms."""

    conn: asyncpg.Connection
    schema: str
    seen: dict[str, float] = field(default_factory=dict)

    async def watch(self, stop: asyncio.Event) -> None:
        last = 0
        while not stop.is_set():
            rows = await self.conn.fetch(
                f'SELECT seq, event_id::text AS id FROM "{self.schema}".audit WHERE seq > $1',
                last,
            )
            now = asyncio.get_running_loop().time()
            for row in rows:
                self.seen.setdefault(row["id"], now)
                last = max(last, row["seq"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    def figures(self, acks: list[Ack], since: float) -> dict[str, float]:
        """Seconds: the longest stall, and p50 / p99 / max acknowledged → visible, of the
        commands acknowledged from `since` on."""
        window = [a for a in acks if a.at >= since]
        latencies = sorted(max(0.0, self.seen[a.event_id] - a.at) for a in window)
        shown = sorted(self.seen[a.event_id] for a in window)
        gaps = [later - earlier for earlier, later in itertools.pairwise(shown)]
        first_gap = shown[0] - since if shown else 0.0

        def percentile(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

        return {
            "commands": len(window),
            "longest_stall_s": round(max([first_gap, *gaps]), 2),
            "p50_s": round(percentile(0.50), 3),
            "p99_s": round(percentile(0.99), 3),
            "max_s": round(latencies[-1], 2),
        }


async def test_a_broker_killed_under_load_loses_nothing(
    cluster: LocalKafka, replicated_stack: Stack
) -> None:
    stack = replicated_stack
    for p in await _partitions(cluster.bootstrap):
        if p["topic"] in EVENT_TOPICS:
            assert len(p["replicas"]) == 3, p  # type: ignore[arg-type]
    admin = new_admin(cluster.bootstrap)
    await admin.start()
    try:
        insync = await topic_configs(admin, EVENT_TOPICS, MIN_INSYNC)
    finally:
        await admin.close()
    assert insync == {t: "2" for t in EVENT_TOPICS}

    conn = await connect(stack)
    # The first generation's schema (`projection_g1`); the base schema has the tables too.
    (schema,) = [
        s for s in await schemas_with(conn, "audit") if re.fullmatch(r"projection_g\d+", s)
    ]
    visibility = Visibility(conn, schema)
    load = Load(stack, seed=31)
    stop, stop_watch = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    watching = asyncio.create_task(visibility.watch(stop_watch))
    alive = {1, 2, 3}

    async def progress(more: int, what: str) -> None:
        async def acknowledged(count: int = len(load.acks) + more) -> bool:
            return len(load.acks) >= count

        await eventually(acknowledged, 90, what)

    try:
        await progress(30, "load before the first fault")
        first = await _busiest_leader(cluster, alive)
        failover_from = asyncio.get_running_loop().time()
        await cluster.kill(first)
        alive.discard(first)
        await progress(80, f"load with node {first} killed")

        async def flowing(after: float = asyncio.get_running_loop().time()) -> bool:
            return any(a.at > after and a.event_id in visibility.seen for a in load.acks)

        # The cluster fails over by itself: what is accepted now shows with the node still dead.
        await eventually(flowing, 60, f"new commands visible with node {first} dead")
        await cluster.up()  # only the killed node starts
        alive.add(first)
        await eventually(lambda: _all_in_sync(cluster), 120, f"node {first} back in sync")
        await progress(40, "load after the restart")
        second = await _busiest_leader(cluster, alive - {first})
        await cluster.kill(second)
        alive.discard(second)
        await progress(80, f"load with node {second} killed")
    finally:
        stop.set()
        await running

    try:
        counts = await reconcile(stack, load)

        async def all_visible() -> bool:
            return all(a.event_id in visibility.seen for a in load.acks)

        await eventually(all_visible, 60, "every acknowledged command in the read models")
    finally:
        stop_watch.set()
        await watching
        await conn.close()
    figures = visibility.figures(load.acks, failover_from)
    print(f"\nbroker failover (killed node {first}, restarted it, killed node {second}):")
    print("reconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))
    print("accepted -> visible from the first kill on:", figures)
    _record(counts, figures)


def _record(counts: dict[str, int], figures: dict[str, float]) -> None:
    """The figures of the last run, for docs/scaling.md (a file, since pytest hides prints)."""
    out = Path(".aidline/test-logs/broker-failover.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{counts}\n{figures}\n")
