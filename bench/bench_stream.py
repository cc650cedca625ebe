"""The live stream's memory: a projection process serving BENCH_STREAM_SUBSCRIBERS (200)
subscribers that all resume at once from the deepest point it allows
(`STREAM_MAX_RESUME_EVENTS`, default 10,000 events back), beside the same process idle once it
has caught up (the baseline).

Figures: the process's peak resident memory while the resumes are read (VmHWM after resetting
it, and VmRSS sampled every 20 ms: the larger), its memory with the 200 subscribers live
afterwards, and how long the 200 resumes took. Each subscriber has a token of its own subject
(the per-principal cap is not what is measured); the service runs with `STREAM_MAX_TOTAL`
raised to fit them.

The events are the projection benchmark's realistic mix (`bench_projection._produce`). The
subscribers read over raw sockets and only look for the end of the replay (`: live`), so the
bench process costs the service as little as possible.
"""

from __future__ import annotations

import asyncio
import os
import time

import sqlalchemy as sa

from bench.bench_projection import _produce
from bench.procs import rss_mb
from bench.report import Result
from shared.auth import DEV_SECRET, Role, mint_token
from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.db import Database
from tests.infra import POSTGRES_URL
from tests.projection import Projection, Topics, auth, projection_service

SUBSCRIBERS = int(os.environ.get("BENCH_STREAM_SUBSCRIBERS", "200"))
DEPTH = 10_000  # the service's default STREAM_MAX_RESUME_EVENTS: the deepest resume allowed
TARGET_PEAK_MB = 400.0  # what the unbounded resume took for 3 subscribers (148 MB each)


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux 4.0+; ignored where not allowed)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


async def _caught_up(service: Projection, count: int) -> None:
    while True:
        status = (await service.client.get("/admin/status", headers=auth("admin"))).json()
        if status["events_applied"] >= count and status["lag"] == 0:
            return
        await asyncio.sleep(0.2)


async def _resume_point(service: Projection) -> str:
    """The event exactly DEPTH events before the newest, in the stream's order."""
    schema = (await service.client.get("/admin/status", headers=auth("admin"))).json()["schema"]
    db = Database(POSTGRES_URL, schema)
    try:
        async with db.engine.connect() as conn:
            event_id = await conn.scalar(
                sa.text(
                    f'SELECT event_id FROM "{schema}".audit WHERE seq >= '
                    f'(SELECT max(seq) FROM "{schema}".audit) - :depth ORDER BY seq LIMIT 1'
                ),
                {"depth": DEPTH},
            )
    finally:
        await db.dispose()
    return str(event_id)


async def _subscriber(port: int, n: int, resume: str) -> tuple[asyncio.StreamWriter, float]:
    """Open a resuming stream; return once the replay is over (the server says `: live`)."""
    token = mint_token(DEV_SECRET, f"bench-{n}", [Role.PLANNER], ttl_seconds=3600)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /events/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Last-Event-ID: {resume}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    started = time.perf_counter()
    tail = b""
    while b": live" not in tail:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError(f"subscriber {n}: the stream closed during the replay")
        if tail == b"" and not chunk.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"subscriber {n}: {chunk[:200]!r}")
        tail = tail[-16:] + chunk
    return writer, time.perf_counter() - started


async def run() -> list[Result]:
    topics = await Topics.fresh()
    names = {REQUESTS: topics.requests, ALLOCATIONS: topics.allocations,
             DELIVERIES: topics.deliveries}  # fmt: skip
    count = await _produce(names, DEPTH + 500)
    async with projection_service(
        topics, STREAM_MAX_TOTAL=str(SUBSCRIBERS + 10), LOG_LEVEL="warning"
    ) as service:
        await _caught_up(service, count)
        resume = await _resume_point(service)
        pid = service.process.pid
        port = int(service.url.rsplit(":", 1)[1])
        idle = rss_mb(pid)
        _reset_peak(pid)
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        opened = await asyncio.gather(*(_subscriber(port, n, resume) for n in range(SUBSCRIBERS)))
        took = time.perf_counter() - started
        done.set()
        await sampler
        peak = max(peak, _status_kb(pid, "VmHWM") * 1024 / 1e6)
        live = rss_mb(pid)
        slowest = max(seconds for _, seconds in opened)
        for writer, _ in opened:
            writer.close()
    events = SUBSCRIBERS * (DEPTH + 1)
    note = (
        f"{SUBSCRIBERS} subscribers x {DEPTH:,} events resumed at once ({events:,} frames) "
        f"in {took:.1f} s (slowest {slowest:.1f} s); {live:,.1f} MB with them all live after"
    )
    return [
        Result(
            f"stream: peak RSS, {SUBSCRIBERS} subscribers resuming {DEPTH:,} back",
            peak,
            "MB",
            baseline_name="the same process idle, caught up",
            baseline_value=idle,
            target=f"<= {TARGET_PEAK_MB:.0f} MB",
            met=peak <= TARGET_PEAK_MB,
            notes=note,
        ),
        Result(
            f"stream: RSS with {SUBSCRIBERS} live subscribers",
            live,
            "MB",
            baseline_name="idle",
            baseline_value=idle,
        ),
    ]
