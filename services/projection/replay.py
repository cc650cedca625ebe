"""Helper processes for a rebuild's replay (PostgreSQL).

A rebuild's consumer group may have more members than the service's own process: each helper
runs the building generation's consumer too (same group, same schema), Kafka splits the
partitions between them, and every batch still commits its read-model changes with its offsets
and tracking records in one transaction. Row loads lock their rows in key order, so two
processes changing the same requirement wait for each other instead of losing an update. On two
cores a second process makes a replay about 1.4x faster; a third does not help
(`PROJECTION_REBUILD_PROCESSES`).

`python -m services.projection.replay <generation>` reads its settings (one JSON line) from
stdin and runs until stdin closes, so a helper never outlives the process that started it, even
one killed with -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

from services.projection.consumers import ReadModelWriter
from services.projection.generations import Generation
from services.projection.settings import ProjectionSettings
from shared.contracts import CATALOGUES
from shared.observability.logs import configure_logging, resolve_format
from shared.runtime import tune_gc

log = logging.getLogger(__name__)

# What a helper needs to run a generation's consumer; nothing else (no secrets) is handed over.
_HANDED_OVER = (
    "database_url",
    "kafka_bootstrap_servers",
    "projection_schema",
    "consumer_group_prefix",
    "requests_topic",
    "allocations_topic",
    "deliveries_topic",
    "projection_batch_size",
    "consumer_max_attempts",
    "consumer_stall_seconds",
    "log_level",
    "log_format",
    "environment",
)
STOP_SECONDS = 15.0


class ReplayHelpers:
    """`count` helper processes replaying into generation `number` while the caller's own
    consumer does the same."""

    def __init__(self, settings: ProjectionSettings, number: int, count: int) -> None:
        self.settings, self.number, self.count = settings, number, count
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        handed_over = json.dumps(self.settings.model_dump(include=set(_HANDED_OVER))).encode()
        for _ in range(self.count):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.projection.replay",
                str(self.number),
                stdin=asyncio.subprocess.PIPE,
            )
            assert process.stdin is not None
            process.stdin.write(handed_over + b"\n")
            await process.stdin.drain()
            self.processes.append(process)
        if self.count:
            log.info("rebuild of generation %d: %d helper process(es)", self.number, self.count)

    @property
    def running(self) -> int:
        return sum(process.returncode is None for process in self.processes)

    async def stop(self) -> None:
        """Close their stdin (they stop after the batch in hand) and wait; kill what hangs."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        self.processes.clear()


async def _serve(number: int, stdin: asyncio.StreamReader, settings: ProjectionSettings) -> None:
    catalogues = {topic: CATALOGUES[own] for topic, own in settings.topics.items()}
    writer = ReadModelWriter(catalogues)
    generation = Generation(number, settings, writer, lambda *_: None, building=True)
    generation.start()
    try:
        await stdin.read()  # until the parent closes it, or dies
    finally:
        await generation.stop()
        await generation.db.dispose()


async def _main(number: int) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    fields: dict[str, Any] = json.loads(await stdin.readline())
    settings = ProjectionSettings.model_construct(**fields)
    configure_logging(
        service="projection-replay",
        level=settings.log_level,
        log_format=resolve_format(settings.log_format, settings.environment),
    )
    tune_gc()
    await _serve(number, stdin, settings)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(int(sys.argv[1])))
