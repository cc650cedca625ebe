"""The lock files (requirements/*.txt) agree with pyproject.toml: every pin there is locked at
the same version, the run lock carries nothing only tests need, and every locked package is
hashed. `make lock` rewrites them after a pin changes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)")
LOCKED = re.compile(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)")
ENTRY = re.compile(r"(?m)^(?=[A-Za-z0-9_.-]+==)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        assert match, f"{requirement!r} in pyproject.toml is not pinned with =="
        pins[_name(match.group(1))] = match.group(2)
    return pins


def _locked(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {
        _name(m.group(1)): m.group(2) for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)", text)
    }


@pytest.fixture(scope="module")
def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_the_run_lock_holds_every_runtime_pin(project: dict[str, object]) -> None:
    runtime = _pins(project["dependencies"])  # type: ignore[arg-type]
    locked = _locked("run.txt")
    assert {name: locked.get(name) for name in runtime} == runtime


def test_the_dev_lock_holds_every_pin_of_run_dev_and_bench(project: dict[str, object]) -> None:
    extras = project["optional-dependencies"]
    wanted = _pins([*project["dependencies"], *extras["dev"], *extras["bench"]])  # type: ignore[index, misc]
    locked = _locked("dev.txt")
    assert {name: locked.get(name) for name in wanted} == wanted


def test_running_installs_nothing_only_tests_need() -> None:
    tools = {"pytest", "hypothesis", "schemathesis", "playwright", "ruff", "mypy", "uv"}
    assert tools <= set(_locked("dev.txt"))
    assert tools & set(_locked("run.txt")) == set()


@pytest.mark.parametrize("lock", ["run.txt", "dev.txt"])
def test_every_locked_package_is_hashed(lock: str) -> None:
    entries = re.split(r"(?m)^(?=[A-Za-z0-9_.-]+==)", (ROOT / "requirements" / lock).read_text())[
        1:
    ]
    assert entries
    unhashed = [entry.split()[0] for entry in entries if "--hash=sha256:" not in entry]
    assert unhashed == []
