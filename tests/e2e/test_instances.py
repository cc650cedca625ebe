"""Two instances of every service lose nothing (DESIGN.md §6, docs/scaling.md): two each of the
request, allocation, delivery and projection services share one PostgreSQL database (migrated
once, by `aidline migrate`, before any starts) and the broker. Commands go round-robin over the
instances; under that load the instance holding the request service's relay leadership is
killed -9, then a projection instance; both are started again; the counts reconcile as in the
other fault tests (acknowledged = stored = on Kafka = in every read model; 0 lost, 0 doubled).

The surviving projection instance serves what both apply: its live stream (opened with a ticket
the other instance issued) shows every acknowledged event, whichever instance applied it, and
read-your-writes (`?after_event=`) answers there for events of every partition.

Measured, for docs/scaling.md: how long after the leader's death its follower publishes, the
longest stall and accepted → visible from the first kill on."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shared.auth import DEV_SECRET, Role, mint_token
from shared.contracts.topics import REQUESTS
from tests.e2e.load import Load
from tests.e2e.reconcile import connect, reconcile, schemas_with
from tests.e2e.stack import LOGS, Stack, create_database, drop_database, free_port
from tests.e2e.test_broker_failover import Visibility
from tests.infra import eventually

pytestmark = pytest.mark.timeout(480)

SERVICES = ("request", "allocation", "delivery", "projection")
INSTANCES = tuple(f"{service}-{n}" for service in SERVICES for n in (1, 2))


@dataclass
class Instances(Stack):
    """The stack with two processes per service, named `<service>-<n>`. `url(<service>)` hands
    out the instances still running in turn (what a load balancer does); `url(<instance>)` is
    that one."""

    _turn: itertools.count[int] = field(default_factory=itertools.count)
    # Instances the balancer sends to: from ready until killed (a readiness probe's view).
    rotation: set[str] = field(default_factory=set)

    def url(self, name: str) -> str:
        if name in SERVICES:
            running = [i for i in INSTANCES if i.startswith(name + "-") and i in self.rotation]
            name = running[next(self._turn) % len(running)]
        return f"http://127.0.0.1:{self.ports[name]}"

    async def wait_ready(
        self, service: str, timeout: float = 120.0, *, degraded_ok: bool = False
    ) -> None:
        await super().wait_ready(service, timeout, degraded_ok=degraded_ok)
        self.rotation.add(service)

    def kill(self, service: str) -> None:
        self.rotation.discard(service)
        super().kill(service)

    def start(self, name: str) -> None:
        service = name.split("-")[0]
        self.ports.setdefault(name, free_port())
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{self.group_prefix}{name}.log").open("ab")
        env = (
            os.environ
            | {
                "DATABASE_URL": self.database_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "CONSUMER_GROUP_PREFIX": self.group_prefix,
                "ENVIRONMENT": "test",
                f"{service.upper()}_PORT": str(self.ports[name]),
                "LOG_LEVEL": "WARNING",
            }
            | self.env_overrides
        )
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _headers(role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_SECRET, f'instances-{role}', [role])}"}


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    database_url = await create_database()
    migrate = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "aidline"), "migrate",
        env=os.environ | {"DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await migrate.communicate()
    assert migrate.returncode == 0, out.decode()
    stack = Instances(
        database_url,
        env_overrides={
            "AUTO_APPROVE": "true",  # work flows on to the delivery service by itself
            "MIGRATE_ON_START": "false",  # done once, above
            "CONSUMER_START_AT": "latest",  # the shared broker holds earlier runs' events
        },
    )
    try:
        for name in INSTANCES:
            stack.start(name)
        await asyncio.gather(*(stack.wait_ready(name, timeout=180) for name in INSTANCES))
        yield stack
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def _leader(stack: Instances, service: str) -> str | None:
    """The instance whose relay publishes (`/readyz`: relay.leader), if one does."""
    async with httpx.AsyncClient(timeout=5) as client:
        for name in INSTANCES:
            if name.startswith(service + "-") and name in stack.processes:
                with contextlib.suppress(httpx.TransportError):
                    checks = (await client.get(stack.url(name) + "/readyz")).json()["checks"]
                    if checks["relay"]["leader"]:
                        return name
    return None


@dataclass
class Watched:
    """The ids of the events a live stream sent, followed as a browser follows it: a stream
    the server ends (a subscriber that fell too far behind is disconnected) is opened again
    with `Last-Event-ID`, and what it missed comes first."""

    ids: set[str] = field(default_factory=set)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    resumed: int = 0

    async def follow(self, url: str, ticket: str) -> None:
        # The ticket opens the first stream only (it is for one opening); a resume shows the
        # bearer token, as a client outside the browser does.
        params: dict[str, str] = {"ticket": ticket}
        headers: dict[str, str] = {}
        last: str | None = None
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            while True:
                async with client.stream(
                    "GET", url + "/events/stream", params=params, headers=headers
                ) as response:
                    assert response.status_code == 200, await response.aread()
                    async for line in response.aiter_lines():
                        if line == ": live":
                            self.opened.set()
                        elif line.startswith("id:"):
                            last = line[3:].strip()
                            self.ids.add(last)
                self.resumed += 1
                params = {}
                headers = _headers(Role.ADMIN) | ({"Last-Event-ID": last} if last else {})


@dataclass
class ReadYourWrites:
    """`?after_event=` on one projection instance for the latest requirement acknowledged
    (wherever it is applied): the answers and the partitions their events were on."""

    answers: list[int] = field(default_factory=list)
    partitions: set[int] = field(default_factory=set)
    waited: list[float] = field(default_factory=list)

    async def probe(self, url: str, load: Load, stop: asyncio.Event) -> None:
        done: set[str] = set()
        async with httpx.AsyncClient(timeout=15, headers=_headers(Role.PLANNER)) as client:
            while not stop.is_set():
                acks = [a for a in load.acks if a.kind == "requirement" and a.stream_id not in done]
                if acks:
                    ack = acks[-1]
                    done.add(ack.stream_id)
                    started = asyncio.get_running_loop().time()
                    response = await client.get(
                        f"{url}/audit/{ack.stream_id}", params={"after_event": ack.event_id}
                    )
                    self.waited.append(asyncio.get_running_loop().time() - started)
                    self.answers.append(response.status_code)
                    if response.status_code == 200:
                        events = response.json()["events"]
                        assert ack.event_id in {str(e["event_id"]) for e in events}
                        self.partitions |= {e["partition"] for e in events}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.3)


async def test_two_instances_of_every_service_lose_nothing(instances: Instances) -> None:
    stack = instances
    survivor, victim = "projection-1", "projection-2"
    conn = await connect(stack)
    (schema,) = [
        s for s in await schemas_with(conn, "audit") if re.fullmatch(r"projection_g\d+", s)
    ]
    visibility = Visibility(conn, schema)
    # A ticket issued by one projection instance opens the stream on the other.
    async with httpx.AsyncClient(timeout=10) as client:
        issued = await client.post(
            stack.url(victim) + "/events/stream/tickets", headers=_headers(Role.ADMIN)
        )
    assert issued.status_code == 201, issued.text
    watched = Watched()
    following = asyncio.create_task(watched.follow(stack.url(survivor), issued.json()["ticket"]))
    await asyncio.wait_for(watched.opened.wait(), 30)

    load = Load(stack, seed=18)
    ryw = ReadYourWrites()
    stop, stop_probe, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(load.run(stop, writers=2))
    watching = asyncio.create_task(visibility.watch(stop_watch))
    probing = asyncio.create_task(ryw.probe(stack.url(survivor), load, stop_probe))
    loop = asyncio.get_running_loop()

    async def progress(more: int, what: str) -> None:
        async def acknowledged(count: int = len(load.acks) + more) -> bool:
            return len(load.acks) >= count

        await eventually(acknowledged, 120, what)

    try:
        await progress(150, "load with every instance up")
        # Read-your-writes across instances, checked while both projection instances apply,
        # until a probe has read an event the other instance applied (by chance, eight probes
        # all fell on the survivor's two partitions of three: (2/3)^8, about 4 %).
        async with httpx.AsyncClient(timeout=10, headers=_headers()) as client:
            held = (await client.get(stack.url(survivor) + "/admin/status")).json()["partitions"]
        own = {p["partition"] for p in held if p["topic"] == REQUESTS}

        async def crossed() -> bool:
            return bool(ryw.partitions - own)

        await eventually(crossed, 60, "a probe of an event the other instance applied")
        stop_probe.set()
        await probing
        assert ryw.answers and set(ryw.answers) == {200}, ryw.answers
        assert ryw.partitions - own, f"events the other instance applied too: {ryw.partitions}"

        leader = await _leader(stack, "request")
        assert leader is not None, "one request instance publishes"
        killed_at = loop.time()
        stack.kill(leader)
        follower = next(i for i in INSTANCES if i.startswith("request-") and i != leader)

        async def took_over() -> bool:
            return await _leader(stack, "request") == follower

        await eventually(took_over, 60, f"{follower} to take the relay over")
        takeover_s = loop.time() - killed_at

        async def published_again() -> bool:  # a request event acknowledged after the kill
            return any(
                a.at > killed_at and a.service == "request" and a.event_id in visibility.seen
                for a in load.acks
            )

        await eventually(published_again, 60, "request events visible after the leader's death")
        first_visible_s = min(
            visibility.seen[a.event_id] - killed_at
            for a in load.acks
            if a.at > killed_at and a.service == "request" and a.event_id in visibility.seen
        )
        await progress(60, "load with the request leader dead")

        stack.kill(victim)
        await progress(100, "load with one projection instance dead")
        stack.start(leader)
        stack.start(victim)
        await asyncio.gather(stack.wait_ready(leader, 120), stack.wait_ready(victim, 120))
        await progress(60, "load with every instance back")
    finally:
        stop.set()
        stop_probe.set()
        await running
        await probing

    try:
        counts = await reconcile(stack, load)

        async def all_visible() -> bool:
            return all(a.event_id in visibility.seen for a in load.acks)

        await eventually(all_visible, 60, "every acknowledged command in the read models")

        async def all_streamed() -> bool:
            return all(a.event_id in watched.ids for a in load.acks)

        await eventually(
            all_streamed,
            60,
            f"{survivor}'s stream to show every event (resumed {watched.resumed} times)",
        )
    finally:
        stop_watch.set()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await watching
        await conn.close()
    assert load.server_errors.keys() <= {503}, load.server_errors  # a dying instance, no 500
    figures = visibility.figures(load.acks, killed_at) | {
        "relay_takeover_s": round(takeover_s, 2),
        "first_request_event_visible_after_kill_s": round(first_visible_s, 2),
        "read_your_writes_p99_s": round(sorted(ryw.waited)[int(0.99 * len(ryw.waited))], 3),
    }
    print(f"\ninstances (killed {leader}, then {victim}; both restarted):")
    print("reconciled:", ", ".join(f"{k}={v}" for k, v in counts.items()))
    print("figures:", figures)
    out = LOGS / "instances.txt"
    out.write_text(json.dumps({"counts": counts, "figures": figures}) + "\n")
