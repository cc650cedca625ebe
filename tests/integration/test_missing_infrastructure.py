"""Under CI a test that needs Kafka or PostgreSQL fails when they are missing — it never skips."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

DEAD = "127.0.0.1:1"  # nothing listens on port 1


@pytest.mark.parametrize(
    ("test_id", "variable", "value", "message"),
    [
        (
            "tests/integration/test_event_store.py::test_append_and_read_back[postgres]",
            "DATABASE_URL",
            f"postgresql+asyncpg://aidline:aidline@{DEAD}/aidline",
            "PostgreSQL is not reachable",
        ),
        (
            "tests/integration/test_relay.py::test_idle_relay_is_woken_by_commit_not_by_polling[sqlite]",
            "KAFKA_BOOTSTRAP_SERVERS",
            DEAD,
            "Kafka is not reachable",
        ),
    ],
)
def test_missing_infrastructure_fails_the_suite(
    test_id: str, variable: str, value: str, message: str
) -> None:
    env = os.environ | {"CI": "true", variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed" in output or "1 error" in output, output
    assert "skipped" not in output, output
    assert message in output, output
