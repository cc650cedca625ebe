"""HTTP command throughput of the request service on one uvicorn worker, PostgreSQL: commands/s
and p50/p99 latency of `POST /requirements`, beside the same process answering `GET /healthz`
(no database, no auth, no validation) at the same concurrency in the same run (target: 0.30x).
Then the same with several uvicorn workers (`WEB_CONCURRENCY`), beside the one worker's figure:
how the command path scales on this machine's cores.

The service runs as a real process (`tests.e2e.stack.Stack`, its own database); the load comes
from client processes of its own (`bench.httpload`). Both share the machine's cores with
PostgreSQL and Kafka, so the notes give the CPU the service used during each run: a service near
100% of one core is the limit, one well below it waits on the database or the client. They also
give its CPU time per request (its workers' included), which a busy machine moves far less than
the rates: the figure to compare changes by.

BENCH_HTTP_COMMANDS (default 3000), BENCH_HTTP_CONCURRENCY (32), BENCH_HTTP_CLIENTS (client
processes, 1), BENCH_HTTP_WORKERS (uvicorn workers of the scaling figure, 2; 1 skips it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.httpload import LoadResult, LoadSpec, drive
from bench.procs import cpu_seconds
from bench.report import Result
from bench.settle import wait_caught_up
from shared.auth import DEV_SECRET, Role, mint_token
from tests.e2e.stack import Stack, create_database, drop_database

COMMANDS = int(os.environ.get("BENCH_HTTP_COMMANDS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_HTTP_CONCURRENCY", "32"))
CLIENTS = int(os.environ.get("BENCH_HTTP_CLIENTS", "1"))
WORKERS = int(os.environ.get("BENCH_HTTP_WORKERS", "2"))
# How long the service(s) may take to start: on a machine other runs keep busy, importing and
# migrating four services at once took over 60 s (47-66 s measured).
START_SECONDS = 300.0
TARGET_RATIO = 0.30  # of GET /healthz, same process (issue 20; 1,000 commands/s before)


def submit_requirements(stack: Stack, count: int = 1000, concurrency: int = 32) -> LoadSpec:
    """`POST /requirements` to the stack's request service, as a recipient."""
    token = mint_token(DEV_SECRET, "bench-recipient", [Role.RECIPIENT])
    return LoadSpec(
        url=stack.url("request") + "/requirements",
        method="POST",
        body=requirement_body(),
        headers={"Authorization": f"Bearer {token}"},
        count=count,
        concurrency=concurrency,
    )


def requirement_body() -> dict[str, object]:
    needed_by = datetime.now(UTC).date() + timedelta(days=90)
    return {
        "item_code": "ART-155-HE",
        "quantity": 500,
        "priority": 2,
        "needed_by": needed_by.isoformat(),
        "destination": "Operational Command East, Dnipro",
        "justification": "benchmark",
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (uvicorn's workers run under a supervisor)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            kids = [int(child) for child in children.read().split()]
        own = cpu_seconds(pid)
    except OSError:  # gone
        return 0.0
    return own + sum(tree_cpu_seconds(kid) for kid in kids)


@dataclass(frozen=True)
class Measured:
    load: LoadResult
    cpu_share: float  # of one core, over the run
    cpu_us: float  # per request, the service's processes together

    @property
    def cpu(self) -> str:
        return f"{self.cpu_share:.0%} of a core, {self.cpu_us:,.0f} µs per request"


async def _measure(stack: Stack, spec: LoadSpec) -> Measured:
    pid = stack.processes["request"].pid
    cpu, wall = tree_cpu_seconds(pid), time.perf_counter()
    result = await drive(spec, CLIENTS)
    cpu, wall = tree_cpu_seconds(pid) - cpu, time.perf_counter() - wall
    if result.failures:
        raise RuntimeError(f"{spec.method} {spec.url}: {result.statuses}")
    return Measured(result, cpu / wall, cpu / result.count * 1e6)


async def _serve(workers: int) -> tuple[Measured, Measured, float]:
    """(GET /healthz, POST /requirements, seconds of catch-up), the service on a fresh database
    with `workers` uvicorn workers."""
    database_url = await create_database()
    stack = Stack(database_url, env_overrides={"WEB_CONCURRENCY": str(workers)})
    try:
        stack.start("request")
        await stack.wait_ready("request", START_SECONDS)
        # Its consumers first read the history on the shared topics.
        caught_up = await wait_caught_up(stack, ["request"])
        command = submit_requirements(stack, COMMANDS, CONCURRENCY)
        trivial = LoadSpec(
            url=stack.url("request") + "/healthz", count=COMMANDS, concurrency=CONCURRENCY
        )
        health = await _measure(stack, trivial)
        posts = await _measure(stack, command)
    finally:
        stack.stop_all()
        await drop_database(database_url)
    return health, posts, caught_up


async def run() -> list[Result]:
    health, posts, caught_up = await _serve(1)
    scaled = await _serve(WORKERS) if WORKERS > 1 else None
    setup = (
        f"{COMMANDS:,} requests, {CONCURRENCY} connections from {CLIENTS} client process(es) "
        "on the same 2 cores as the service, PostgreSQL and Kafka; measured once the service "
        f"had caught up with the shared topics ({caught_up:.0f} s)"
    )
    ratio = posts.load.rate / health.load.rate
    results = [
        Result(
            "HTTP: POST /requirements, one uvicorn worker",
            posts.load.rate,
            "commands/s",
            "GET /healthz, same process",
            health.load.rate,
            target=f">= {TARGET_RATIO:.2f}x GET /healthz",
            met=ratio >= TARGET_RATIO,
            notes=f"{setup}; service CPU {posts.cpu} (healthz: {health.cpu})",
        ),
        Result(
            "HTTP: POST /requirements latency, p50",
            posts.load.p50,
            "ms",
            "GET /healthz p50",
            health.load.p50,
            notes=f"{CONCURRENCY} requests in flight",
        ),
        Result(
            "HTTP: POST /requirements latency, p99",
            posts.load.p99,
            "ms",
            "GET /healthz p99",
            health.load.p99,
            notes=f"{CONCURRENCY} requests in flight",
        ),
    ]
    if scaled is not None:
        scaled_health, scaled_posts, _ = scaled
        results.append(
            Result(
                f"HTTP: POST /requirements, {WORKERS} uvicorn workers",
                scaled_posts.load.rate,
                "commands/s",
                "POST /requirements, one worker, same run",
                posts.load.rate,
                notes=f"a fresh database; p50 {scaled_posts.load.p50:,.1f} ms, p99 "
                f"{scaled_posts.load.p99:,.1f} ms; the workers' CPU {scaled_posts.cpu}; GET "
                f"/healthz {scaled_health.load.rate:,.0f}/s ({scaled_health.cpu}); every worker "
                "runs its own relay (one leads) and consumers, on the same 2 cores as the "
                "client, PostgreSQL and Kafka",
            )
        )
    return results
