"""`aidline run` starts a service that exits again, after a pause that doubles with each quick
exit and starts over once the service has run a while (real processes; time is passed in)."""

from __future__ import annotations

import subprocess
import sys

from shared.cli.run import FIRST_RESTART_SECONDS, STABLE_SECONDS, Supervised, supervise


def _exiting() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])


def test_a_service_that_exits_is_started_again_with_a_growing_pause() -> None:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(_exiting())
        return started[-1]

    service = Supervised("request", start, start(), started_at=0.0)
    said: list[str] = []
    service.process.wait()
    supervise({"request": service}, 1.0, said.append)
    assert service.restart_at == 1.0 + FIRST_RESTART_SECONDS and len(started) == 1
    assert "request service exited with 3" in said[-1]
    supervise({"request": service}, 1.5, said.append)  # still pausing
    assert len(started) == 1
    supervise({"request": service}, 2.0, said.append)
    assert len(started) == 2 and service.restart_at is None
    assert "started again" in said[-1]
    service.process.wait()
    supervise({"request": service}, 3.0, said.append)  # a second quick exit: twice the pause
    assert service.restart_at == 3.0 + 2 * FIRST_RESTART_SECONDS
    supervise({"request": service}, 5.0, said.append)
    service.process.wait()
    later = 5.0 + STABLE_SECONDS  # it ran a while: the pause starts over
    supervise({"request": service}, later, said.append)
    assert service.restart_at == later + FIRST_RESTART_SECONDS
    assert [p.returncode for p in started] == [3, 3, 3]


def test_a_running_service_is_left_alone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        service = Supervised("delivery", _exiting, process, started_at=0.0)
        said: list[str] = []
        supervise({"delivery": service}, 100.0, said.append)
        assert service.process is process and service.restart_at is None and not said
    finally:
        process.kill()
        process.wait()
