"""What a process costs, read from /proc: resident memory and CPU time; and the baseline for
memory, an idle uvicorn serving an empty FastAPI app."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx

from tests.e2e.stack import free_port

TICKS = os.sysconf("SC_CLK_TCK")

IDLE_APP = """
import uvicorn
from fastapi import FastAPI

app = FastAPI()

@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def rss_mb(pid: int) -> float:
    """VmRSS of the process, in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces: the fields that follow start after its ')'.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def named_cpu_seconds(name: str) -> float:
    """CPU time used so far by every process of this machine whose command name starts with
    `name` (a local database server's backends: `postgres`)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                command, rest = stat.read().split("(", 1)[1].rsplit(")", 1)
        except OSError:  # gone meanwhile
            continue
        if command.startswith(name):
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, over all cores (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / TICKS, sum(ticks) / TICKS


class MachineMeter:
    """Cores' worth of CPU the whole machine used between start() and stop() (2.0 = both
    cores busy): what the benchmark's own processes share with everything else running."""

    def start(self) -> None:
        self._busy, self._wall = machine_cpu_seconds()[0], time.perf_counter()

    def stop(self) -> float:
        return (machine_cpu_seconds()[0] - self._busy) / (time.perf_counter() - self._wall)


class CpuMeter:
    """Share of one core a process used between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = self._wall = 0.0

    def start(self) -> None:
        self._cpu, self._wall = cpu_seconds(self.pid), time.perf_counter()

    def stop(self) -> float:
        return (cpu_seconds(self.pid) - self._cpu) / (time.perf_counter() - self._wall)


async def idle_uvicorn_rss() -> float:
    """RSS (MB) of uvicorn serving an empty FastAPI app, after answering a few requests."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", IDLE_APP.replace("{port}", str(port))
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            for _ in range(100):
                await client.get("/healthz")
        return rss_mb(process.pid)
    finally:
        process.terminate()
        await process.wait()
