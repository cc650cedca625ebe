"""The whole stack as real processes: the four services under uvicorn, on free ports, against
the real Kafka and a fresh PostgreSQL database of their own. Tests can kill -9 and restart any
service."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.infra import KAFKA, POSTGRES_URL

SERVICES = ("request", "allocation", "delivery", "projection")
LOGS = Path(".aidline/test-logs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_database() -> str:
    """A fresh database on the test PostgreSQL server; returns its SQLAlchemy URL."""
    url = make_url(POSTGRES_URL)
    name = f"aidline_e2e_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database="postgres"
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Stack:
    database_url: str
    env_overrides: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    group_prefix: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:8]}-")
    kafka: str = KAFKA  # the brokers the services use (the shared test broker by default)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def _env(self, service: str) -> dict[str, str]:
        return (
            os.environ
            | {
                "DATABASE_URL": self.database_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "CONSUMER_GROUP_PREFIX": self.group_prefix,
                "ENVIRONMENT": "test",
                f"{service.upper()}_PORT": str(self.ports[service]),
                "LOG_LEVEL": "WARNING",
            }
            | self.env_overrides
        )

    def start(self, service: str) -> None:
        self.ports.setdefault(service, free_port())
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{self.group_prefix}{service}.log").open("ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=self._env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, service: str) -> None:
        """kill -9: no shutdown hooks, no flushing — what a crash looks like."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    async def wait_ready(
        self, service: str, timeout: float = 120.0, *, degraded_ok: bool = False
    ) -> None:
        """Until /readyz says ready (every check passes: the consumers have their partitions),
        or with `degraded_ok` merely degraded (it answers callers, Kafka may be away). Four
        services starting at once on two busy cores took 47-66 s (each migrates in a child
        process first): 60 s failed runs that were merely slow."""
        deadline = asyncio.get_running_loop().time() + timeout
        last = "no answer"
        async with httpx.AsyncClient(base_url=self.url(service), timeout=5) as client:
            while asyncio.get_running_loop().time() < deadline:
                process = self.processes.get(service)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{service} exited with {process.returncode}; see {LOGS}")
                try:
                    response = await client.get("/readyz")
                    accepted = ("ready", "degraded") if degraded_ok else ("ready",)
                    if response.status_code == 200 and response.json()["status"] in accepted:
                        return
                    last = response.text
                except httpx.TransportError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{service} not ready after {timeout}s: {last}")
