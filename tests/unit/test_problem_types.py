"""Every problem an answer can carry has a page (`shared/web/problem_types.py`): the code is read
for each `Problem(...)`, `DomainError(...)` and `Forbidden(...)` it builds, and the kind, status
and title each names must be in the catalogue. No service runs: the code is only read."""

from __future__ import annotations

import ast
import html
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from services.projection.app import build_app
from services.projection.settings import ProjectionSettings
from shared.web.problem_types import PROBLEM_TYPES, type_uri
from shared.web.problems import Problem

ROOT = Path(__file__).resolve().parents[2]
# What the error classes and the web layer answer without naming a kind at the call.
DEFAULTS = {
    "rule-violation": (409, "Conflict"),  # DomainError
    "forbidden": (403, "Forbidden"),  # Forbidden
    "unauthorized": (401, "Unauthorized"),  # Starlette's 401, 404, 405, 413 and the rest
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "payload-too-large": (413, "Payload too large"),
    "http-error": (400, "HTTP error"),
}


def _literal(node: ast.expr | None, names: Mapping[str, object]) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def _built() -> dict[str, set[tuple[object, object, str]]]:
    """kind → {(status, title, where)} of every problem the code builds with literal values."""
    found: dict[str, set[tuple[object, object, str]]] = {}
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]:
        tree = ast.parse(path.read_text())
        names = {
            node.targets[0].id: node.value.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        }  # fmt: skip
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", None))
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if called == "Problem" and len(node.args) >= 2:
                status, title = (_literal(a, names) for a in node.args[:2])
                kind = _literal(keywords.get("kind"), names)
                if kind is None and "kind" not in keywords and isinstance(title, str):
                    kind = title.lower().replace(" ", "-")
            elif called in ("DomainError", "Forbidden") and "kind" in keywords:
                kind = _literal(keywords["kind"], names)
                status = 409 if called == "DomainError" else 403
                title = _literal(keywords.get("title"), names) or (
                    "Conflict" if called == "DomainError" else "Forbidden"
                )
            else:
                continue
            if isinstance(kind, str):
                found.setdefault(kind, set()).add((status, title, where))
    return found


BUILT = _built()


def test_the_reading_finds_the_problems_the_code_builds() -> None:
    assert {"invalid-token", "rate-limited", "forbidden-nation", "too-many-streams"} <= set(BUILT)
    assert len(BUILT) > 25


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_every_problem_the_code_builds_has_a_page(kind: str) -> None:
    assert kind in PROBLEM_TYPES, f"add {kind!r} to shared/web/problem_types.py"
    page = PROBLEM_TYPES[kind]
    for status, title, where in BUILT[kind]:
        assert status in (None, page.status), f"{where}: {kind} is {status}, the page {page.status}"
        assert title in (None, page.title), f"{where}: {kind} is {title!r}, the page {page.title!r}"


def test_every_page_names_a_problem_that_can_be_answered() -> None:
    assert set(PROBLEM_TYPES) - set(BUILT) - set(DEFAULTS) == set()
    for kind, (status, title) in DEFAULTS.items():
        assert (PROBLEM_TYPES[kind].status, PROBLEM_TYPES[kind].title) == (status, title)


def test_a_problem_names_its_page() -> None:
    body = Problem(429, "Too many requests", "wait", kind="rate-limited").body()
    assert body["type"] == type_uri("rate-limited") == "/problems/rate-limited"


@pytest.fixture(scope="module")
def app() -> object:
    return build_app(ProjectionSettings(environment="test"))


async def _get(app: object, url: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test/") as client:
        return await client.get(url)


async def test_a_problem_answers_type_resolves_to_its_page(app: object) -> None:
    problem = await _get(app, "/board/requirements")  # no token: 401
    assert problem.status_code == 401
    page = await _get(app, urljoin(str(problem.url), problem.json()["type"]))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "missing-token" in page.text and "Authorization: Bearer" in page.text


async def test_every_page_is_served_and_listed(app: object) -> None:
    listing = await _get(app, "/problems")
    for kind, page in PROBLEM_TYPES.items():
        answer = await _get(app, type_uri(kind))
        assert answer.status_code == 200, kind
        assert f"{page.status} {html.escape(page.title)}" in answer.text
        assert f'id="{kind}"' in listing.text


async def test_an_unknown_kind_is_a_problem_of_its_own(app: object) -> None:
    answer = await _get(app, "/problems/no-such-thing")
    assert answer.status_code == 404
    assert answer.json()["type"] == "/problems/not-found"
