"""Wait until a freshly started stack has caught up with the shared topics.

A new stack's consumers start from the beginning of the topics, so on a broker that other runs
have used they first work through that history (minutes, on a busy topic); that work must not
land inside a measurement. Caught up = for `ROUNDS` polls in a row: every consumer the service
reports in `/readyz` has a lag gauge in `/metrics` (it has partitions and has fetched from them;
before that its lag reads 0 though it has read nothing) and every such gauge is 0; the consumers'
applied counts grow by less than `TRICKLE` per poll (others may still be producing a little);
and every process stays under `CPU` of a core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.procs import CpuMeter
from tests.e2e.stack import Stack

ROUNDS, INTERVAL, TRICKLE, CPU = 3, 1.0, 100, 0.25


async def _state(client: httpx.AsyncClient, base: str) -> tuple[bool, int]:
    """(every consumer fetched and at lag 0, events applied so far)."""
    checks = (await client.get(base + "/readyz")).json()["checks"]
    consumers = {name.removeprefix("consumer:") for name in checks if name.startswith("consumer:")}
    applied = sum(checks[f"consumer:{name}"]["applied"] for name in consumers)
    lags: dict[str, list[float]] = {name: [] for name in consumers}
    for family in text_string_to_metric_families((await client.get(base + "/metrics")).text):
        if family.name == "aidline_consumer_lag":
            for sample in family.samples:
                lags.setdefault(sample.labels["consumer"], []).append(sample.value)
    return all(values and not any(values) for values in lags.values()), applied


async def wait_caught_up(stack: Stack, services: Sequence[str], give_up: float = 900.0) -> float:
    """Returns the seconds it took."""
    started = time.perf_counter()
    calm, applied_before = 0, None
    async with httpx.AsyncClient(timeout=10) as client:
        while calm < ROUNDS:
            if time.perf_counter() - started > give_up:
                raise TimeoutError(f"the stack did not catch up within {give_up:.0f} s")
            meters = [CpuMeter(stack.processes[s].pid) for s in services]
            for meter in meters:
                meter.start()
            await asyncio.sleep(INTERVAL)
            busy = max(meter.stop() for meter in meters)
            for s in services:
                if stack.processes[s].poll() is not None:
                    raise RuntimeError(f"{s} exited with {stack.processes[s].returncode}")
            try:
                states = [await _state(client, stack.url(s)) for s in services]
            except httpx.TransportError:  # too busy catching up to answer in time: not calm yet
                calm, applied_before = 0, None
                continue
            applied = sum(n for _, n in states)
            grew = TRICKLE if applied_before is None else applied - applied_before
            applied_before = applied
            quiet = all(ok for ok, _ in states) and grew < TRICKLE and busy < CPU
            calm = calm + 1 if quiet else 0
    return time.perf_counter() - started
