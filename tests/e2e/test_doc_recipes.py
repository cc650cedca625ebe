"""Every shell recipe in README.md and docs/ runs as written against the whole stack, so the docs
cannot drift from the code.

A recipe is a fenced block marked `sh`, `bash` or `shell`. The blocks of one page run in order
in one bash (`set -euo pipefail`), so what one defines (a token, a function, an id) the next
uses, as a reader pasting them would. They are written for `make run`'s addresses; the test
points those at the stack it started (http://127.0.0.1:8001…8004, Kafka on 127.0.0.1:9092).

A block that cannot run here says why on the line before its fence:
`<!-- not run: starts the stack itself -->`. Every other block must run and exit 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.auth import Role
from tests.authkit import token
from tests.e2e.stack import SERVICES, Stack
from tests.infra import KAFKA

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(sh|bash|shell)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (.+\S) -->$")
DEFAULT_PORTS = {"request": 8001, "allocation": 8002, "delivery": 8003, "projection": 8004}


@dataclass(frozen=True)
class Recipe:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    not_run: str | None  # why, if it is not run

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def recipes(page: Path) -> list[Recipe]:
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            why = NOT_RUN.match(lines[i - 1]) if i else None
            code = "\n".join(lines[i + 1 : end])
            found.append(Recipe(page, i + 1, code, why.group(1) if why else None))
            i = end
        i += 1
    return found


ALL = [r for page in PAGES for r in recipes(page)]
RUN = sorted({r.page for r in ALL if r.not_run is None})


def test_the_pages_have_recipes_and_most_run() -> None:
    assert len(ALL) > 30
    assert sum(r.not_run is None for r in ALL) > len(ALL) / 2


def _script(page: Path, stack: Stack) -> str:
    """The page's runnable blocks as one script, each announced on stderr, with `make run`'s
    addresses pointed at the test's stack."""
    parts = ["set -euo pipefail"]
    for recipe in recipes(page):
        if recipe.not_run is not None:
            continue
        code = recipe.code
        for service, port in DEFAULT_PORTS.items():
            code = code.replace(f"http://127.0.0.1:{port}", stack.url(service))
            code = code.replace(f"http://localhost:{port}", stack.url(service))
        code = code.replace("127.0.0.1:9092", KAFKA)
        parts.append(f"echo '>>> {recipe.where}' >&2\n{code}")
    return "\n\n".join(parts) + "\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder like a checkout (the recipes name repo paths), whose new files stay out of it."""
    for name in (".venv", "docs", "deploy", "shared", "services", "Makefile", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".aidline").mkdir()
    return tmp_path


@pytest.mark.parametrize("page", RUN, ids=[str(p.relative_to(ROOT)) for p in RUN])
async def test_every_recipe_runs(stack: Stack, workdir: Path, page: Path) -> None:
    bin_dirs = [ROOT / ".venv" / "bin", ROOT / ".aidline" / "tools" / "bin"]
    for tool in ("curl", "jq", "kcat"):
        assert shutil.which(tool), f"{tool} is missing; run deploy/local/test-tools.sh"
    env = os.environ | {
        "PATH": os.pathsep.join([*map(str, bin_dirs), os.environ["PATH"]]),
        # What `make run` leaves for a reader: the addresses and a token per role.
        **{f"AIDLINE_{s.upper()}_URL": stack.url(s) for s in SERVICES},
        **{f"TOKEN_{r.name}": token(r) for r in Role},
        "TOKEN_HUB_RO": token(Role.HUB, hub="RO-SUC"),
    }
    script = _script(page, stack)
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    ran = [line for line in err.decode().splitlines() if line.startswith(">>> ")]
    assert process.returncode == 0, (
        f"{ran[-1] if ran else page} failed:\n{err.decode()[-3000:]}\n{out.decode()[-2000:]}"
    )
    assert len(ran) == sum(r.not_run is None for r in recipes(page))
