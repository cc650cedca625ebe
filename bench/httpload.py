"""HTTP load generator: a fixed number of requests over N concurrent keep-alive connections,
with the latency of each. It runs in processes of its own (`python -m bench.httpload SPEC`),
apart from the benchmark runner, and can be split over several of them.

A child warms its connections up, prints `ready`, waits for a line on stdin (so that all the
children start together), sends its share and prints one JSON line: its start and end on the
wall clock, the latencies in ms and the count of each status code.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import uvloop


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


class Connection:
    """One keep-alive HTTP/1.1 connection that sends the same pre-built request again and again.

    Deliberately minimal, like wrk: the request bytes are built once and an answer is parsed
    only as far as its status and length, so that the generator spends little of the cores it
    shares with the service (an httpx client costs several times more per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, spec: LoadSpec) -> Connection:
        url = urlsplit(spec.url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        body = json.dumps(spec.body).encode() if spec.body is not None else b""
        headers = {"Host": url.netloc, "Content-Length": str(len(body))} | spec.headers
        if spec.body is not None:
            headers["Content-Type"] = "application/json"
        head = f"{spec.method} {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return cls(reader, writer, head.encode() + b"\r\n" + body)

    async def send(self) -> tuple[int, bytes]:
        """Send the request once; the answer's status code and body."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by this generator")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _send(connections: list[Connection], count: int) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    left = count

    async def worker(connection: Connection) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            try:
                status, _ = await connection.send()
                statuses[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError) as exc:
                statuses[type(exc).__name__] += 1
                return  # the connection is gone; the others carry on
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker(connection) for connection in connections))
    return latencies, statuses


async def _child(spec: LoadSpec) -> None:
    connections = [await Connection.open(spec) for _ in range(spec.concurrency)]
    try:
        await _send(connections, spec.warmup)  # every connection open before the clock starts
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        latencies, statuses = await _send(connections, spec.count)
        ended = time.time()
    finally:
        for connection in connections:
            connection.close()
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
    uvloop.run(_child(LoadSpec(**json.loads(sys.argv[1]))))
