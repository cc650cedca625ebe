"""The local PostgreSQL of `deploy/local/postgres.sh` keeps running when `make run` closes the
repository's state folder to other users (0700: it holds the development tokens). As root the
cluster runs as the postgres OS user, and one inside that folder lost its data directory: it
stopped at its next checkpoint, under a `make test` or `make bench` running beside `make run`.

The script runs from a copy in a scratch repository of its own, on a port of its own, so that
the folder closed is not this repository's."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from shared.cli.run import write_private
from tests.e2e.stack import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "postgres.sh"


@pytest.fixture
def scratch_repository() -> Iterator[Path]:
    # Under /var/tmp, open to the postgres OS user like a clone: pytest's own temporary folders
    # are root's alone, where the script would place the cluster elsewhere anyway.
    repo = Path(tempfile.mkdtemp(prefix="aidline-repo-", dir="/var/tmp"))
    repo.chmod(0o755)
    (repo / "deploy" / "local").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "deploy" / "local" / "postgres.sh")
    try:
        yield repo
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def _script(repo: Path, command: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # ours, not the suite's
    env |= {"AIDLINE_HOME": str(repo / ".aidline" / "test"), "AIDLINE_PG_PORT": str(port)}
    return subprocess.run(
        [str(repo / "deploy" / "local" / "postgres.sh"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _data_directory(status: subprocess.CompletedProcess[str]) -> Path:
    """From `status`'s line: "postgres: running (127.0.0.1:<port>, data <folder>)"."""
    return Path(status.stdout.rsplit("data ", 1)[1].rstrip().rstrip(")"))


async def test_a_cluster_keeps_running_when_make_run_closes_the_state_folder(
    scratch_repository: Path,
) -> None:
    repo, port = scratch_repository, free_port()
    started = _script(repo, "up", port)
    assert started.returncode == 0, started.stderr
    cluster = _data_directory(_script(repo, "status", port)).parent  # /var/tmp/... as root
    try:
        conn = await asyncpg.connect(f"postgresql://aidline:aidline@127.0.0.1:{port}/aidline")
        try:
            # What `make run` does to the repository's state folder as it starts.
            write_private(repo / ".aidline" / "tokens.env", "export TOKEN_ADMIN=x\n")
            assert (repo / ".aidline").stat().st_mode & 0o777 == 0o700
            await conn.execute("CHECKPOINT")  # reads the data directory, as the next one would
            await conn.execute("CREATE TABLE still_here (n int)")
        finally:
            await conn.close()
        status = _script(repo, "status", port)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        removed = _script(repo, "remove", port)  # as `make clean` does
    assert removed.returncode == 0, removed.stderr
    assert not cluster.exists(), "removed wherever it lived"
    assert _script(repo, "status", port).returncode == 3  # not running
