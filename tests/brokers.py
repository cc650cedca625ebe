"""Brokers of the tests' own, started with deploy/local/kafka.sh beside the shared one: a
three-node cluster (the failover test) and a broker with TLS and SCRAM listeners. Their ports
come from the environment (`make test` sets them), so parallel runs can keep apart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import eventually

KAFKA_SH = Path(__file__).parents[1] / "deploy" / "local" / "kafka.sh"
# Node <id> of a cluster listens on the base port + (id - 1) * 10, its controller one above.
CLUSTER_PORT = int(os.environ.get("AIDLINE_TEST_CLUSTER_PORT", "20100"))
# The secure broker: plaintext on the base port (kafka.sh's readiness check), its controller
# on +1, TLS on +2 and SASL_SSL on +3.
SECURE_PORT = int(os.environ.get("AIDLINE_TEST_SECURE_PORT", "20200"))
STEP = 10


@dataclass(frozen=True)
class LocalKafka:
    """A broker or cluster of the tests' own, managed by kafka.sh in its own state folder."""

    home: Path
    port: int
    nodes: int = 1
    extra_config: Path | None = None
    format_args: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KAFKA_") or k == "KAFKA_VERSION"
        }
        return env | {
            "AIDLINE_HOME": str(self.home),
            "KAFKA_PORT": str(self.port),
            "CONTROLLER_PORT": str(self.port + 1),
            "KAFKA_NODES": str(self.nodes),
            "KAFKA_NODE_PORT_STEP": str(STEP),
            "KAFKA_EXTRA_CONFIG": str(self.extra_config or ""),
            "KAFKA_FORMAT_ARGS": self.format_args,
            "KAFKA_START_TIMEOUT": "120",
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.node_port(n)}" for n in range(1, self.nodes + 1))

    def node_port(self, node: int) -> int:
        return self.port + (node - 1) * STEP

    def node_dir(self, node: int) -> Path:
        return self.home / ("kafka" if self.nodes == 1 else f"kafka-cluster/node-{node}")

    async def up(self) -> None:
        """Start whatever of it is not running (a node killed, or all); fails the test, never
        skips it, when it cannot."""
        result = await asyncio.to_thread(
            subprocess.run, [str(KAFKA_SH), "up"], env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.fail(f"kafka.sh up failed:\n{result.stderr[-3000:]}", pytrace=False)

    async def down(self) -> None:
        await asyncio.to_thread(
            subprocess.run, [str(KAFKA_SH), "down"], env=self.env, capture_output=True
        )

    async def kill(self, node: int) -> None:
        """kill -9 one node: no controlled shutdown, no leadership handed over."""
        os.kill(int((self.node_dir(node) / "kafka.pid").read_text()), signal.SIGKILL)

        async def gone() -> bool:
            return not self.alive(node)

        await eventually(gone, 10, f"node {node} to die")

    def alive(self, node: int) -> bool:
        pid_file = self.node_dir(node) / "kafka.pid"
        if not pid_file.exists():
            return False
        pid = int(pid_file.read_text())
        return Path(f"/proc/{pid}").exists() and _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
