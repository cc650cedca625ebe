"""HTTP command throughput of the request service on one uvicorn worker, PostgreSQL: commands/s
and p50/p99 latency of `POST /requirements`, beside the same process answering `GET /healthz`
(no database, no auth, no validation) at the same concurrency in the same run.

The service runs as a real process (`tests.e2e.stack.Stack`, its own database); the load comes
from client processes of its own (`bench.httpload`). Both share the machine's cores with
PostgreSQL and Kafka, so the notes give the CPU the service used during each run: a service near
100% of one core is the limit, one well below it waits on the database or the client.

BENCH_HTTP_COMMANDS (default 3000), BENCH_HTTP_CONCURRENCY (32), BENCH_HTTP_CLIENTS (client
processes, 1).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from bench.httpload import LoadResult, LoadSpec, drive
from bench.procs import CpuMeter
from bench.report import Result
from bench.settle import wait_caught_up
from shared.auth import DEV_SECRET, Role, mint_token
from tests.e2e.stack import Stack, create_database, drop_database

COMMANDS = int(os.environ.get("BENCH_HTTP_COMMANDS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_HTTP_CONCURRENCY", "32"))
CLIENTS = int(os.environ.get("BENCH_HTTP_CLIENTS", "1"))
TARGET = 1000.0


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


async def _measure(stack: Stack, spec: LoadSpec) -> tuple[LoadResult, float]:
    meter = CpuMeter(stack.processes["request"].pid)
    meter.start()
    result = await drive(spec, CLIENTS)
    cpu = meter.stop()
    if result.failures:
        raise RuntimeError(f"{spec.method} {spec.url}: {result.statuses}")
    return result, cpu


async def run() -> list[Result]:
    database_url = await create_database()
    stack = Stack(database_url)
    try:
        stack.start("request")
        await stack.wait_ready("request")
        # Its consumers first read the history on the shared topics.
        caught_up = await wait_caught_up(stack, ["request"])
        command = submit_requirements(stack, COMMANDS, CONCURRENCY)
        trivial = LoadSpec(
            url=stack.url("request") + "/healthz", count=COMMANDS, concurrency=CONCURRENCY
        )
        health, health_cpu = await _measure(stack, trivial)
        posts, post_cpu = await _measure(stack, command)
    finally:
        stack.stop_all()
        await drop_database(database_url)
    setup = (
        f"{COMMANDS:,} requests, {CONCURRENCY} connections from {CLIENTS} client process(es) "
        "on the same 2 cores as the service, PostgreSQL and Kafka; measured once the service "
        f"had caught up with the shared topics ({caught_up:.0f} s)"
    )
    return [
        Result(
            "HTTP: POST /requirements, one uvicorn worker",
            posts.rate,
            "commands/s",
            "GET /healthz, same process",
            health.rate,
            target=">= 1,000 commands/s",
            met=posts.rate >= TARGET,
            notes=f"{setup}; service CPU {post_cpu:.0%} of a core (healthz: {health_cpu:.0%})",
        ),
        Result(
            "HTTP: POST /requirements latency, p50",
            posts.p50,
            "ms",
            "GET /healthz p50",
            health.p50,
            notes=f"{CONCURRENCY} requests in flight",
        ),
        Result(
            "HTTP: POST /requirements latency, p99",
            posts.p99,
            "ms",
            "GET /healthz p99",
            health.p99,
            notes=f"{CONCURRENCY} requests in flight",
        ),
    ]
