"""HTTP load generator: a fixed number of requests over N concurrent keep-alive connections,
with the latency of each. It runs in processes of its own (`python -m bench.httpload SPEC`),
apart from the benchmark runner, and can be split over several of them.

A child warms its connections up, prints `ready`, waits for a line on stdin (so that all the
children start together), sends its share and prints one JSON line: its start and end on the
wall clock, the latencies in ms and the count of each status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


@dataclass(frozen=True)
class LoadSpec:
    url: str
    method: str = "GET"
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1000
    concurrency: int = 32
    warmup: int = 64


@dataclass
class LoadResult:
    count: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[str, int]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[98]

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))


async def _send(
    spec: LoadSpec, clients: list[httpx.AsyncClient], count: int
) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    left = count

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            try:
                response = await client.request(spec.method, spec.url, json=spec.body)
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker(client) for client in clients))
    return latencies, statuses


async def _child(spec: LoadSpec) -> None:
    # One client per connection: a single httpx pool of 32 connections spends more CPU
    # finding a free connection than sending (measured: ~270 requests/s against an empty app,
    # where 8 connections manage ~900/s).
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(headers=spec.headers, limits=ONE_CONNECTION, timeout=60)
            )
            for _ in range(spec.concurrency)
        ]
        await _send(spec, clients, spec.warmup)  # every connection open before the clock starts
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        latencies, statuses = await _send(spec, clients, spec.count)
        ended = time.time()
    print(
        json.dumps({"start": started, "end": ended, "latencies": latencies, "statuses": statuses})
    )


async def drive(spec: LoadSpec, processes: int = 1) -> LoadResult:
    """Send `spec.count` requests from `processes` client processes sharing the concurrency;
    the rate is the total over the span from the first start to the last end."""
    shares = [
        LoadSpec(**(asdict(spec) | {
            "count": spec.count // processes + (i < spec.count % processes),
            "concurrency": max(1, spec.concurrency // processes),
            "warmup": max(1, spec.warmup // processes),
        }))
        for i in range(processes)
    ]  # fmt: skip
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.httpload",
            json.dumps(asdict(share)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for share in shares
    ]
    for child in children:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"load client did not start: {line!r}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    reports = []
    for child in children:
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"load client exited with {child.returncode}")
        reports.append(json.loads(out))
    statuses: Counter[str] = Counter()
    for report in reports:
        statuses.update(report["statuses"])
    return LoadResult(
        count=spec.count,
        seconds=max(r["end"] for r in reports) - min(r["start"] for r in reports),
        latencies_ms=[ms for r in reports for ms in r["latencies"]],
        statuses=dict(statuses),
    )


if __name__ == "__main__":
    asyncio.run(_child(LoadSpec(**json.loads(sys.argv[1]))))
