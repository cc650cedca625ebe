"""No input a user can send gets a 5xx, and every answer is one the OpenAPI document promises:
schemathesis draws requests from each service's own document (valid ones and ones that break
the schema) and sends them to the service running in-process against real PostgreSQL, with a
token holding every role; each answer's status, content type, headers and body are checked
against the operation's declared responses (what a generated client relies on).

Deterministic and lean on purpose: the examples are drawn once per operation with a fixed seed
(`derandomize`) and no example database, a few per operation and mode, and sent in one event
loop through the ASGI transport. A failure names the request that got the 5xx.

Relay and consumers are off: what is fuzzed is the HTTP edge down to the store, and fuzzed
events must not reach the shared topics other tests read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation.case import Case

from shared.auth import DEV_SECRET, MAX_SUB_CHARS, Role, mint_token
from tests.integration.inprocess import BUILDERS, running

EXAMPLES_PER_MODE = 8
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# An SSE stream answers until the client goes away: its bad input is checked in
# test_edge_inputs.py instead.
SKIPPED = {("GET", "/events/stream")}
# The longest subject a token may carry: it reaches the idempotency and audit tables.
SUB = "fuzz-" + "s" * (MAX_SUB_CHARS - 5)
ALL_ROLES = mint_token(DEV_SECRET, SUB, [str(r) for r in Role], nation="PL", hub="PL-RZE")
HEADERS = {"Authorization": f"Bearer {ALL_ROLES}"}


def _cases(app: FastAPI) -> list[Case[Any]]:
    """A fixed handful of cases per operation and mode (valid and invalid input)."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    cases: list[Case[Any]] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # the schema FastAPI made is one schemathesis cannot read
            raise result.err()
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_MODE,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def collect(case: Case[Any]) -> None:
                cases.append(case)

            try:
                collect()
            except Unsatisfiable:  # nothing to break: an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
    return cases


def _request(case: Case[Any]) -> dict[str, Any]:
    """The case as httpx keyword arguments (schemathesis serializes for `requests`)."""
    kw = case.as_transport_kwargs(base_url="http://fuzz", headers=HEADERS)
    request: dict[str, Any] = {
        "method": kw["method"],
        "url": kw["url"],
        "headers": {k: str(v) for k, v in kw.get("headers", {}).items()},
        "params": kw.get("params") or None,
    }
    if "json" in kw:
        request["content"] = json.dumps(kw["json"]).encode()
        request["headers"].setdefault("Content-Type", "application/json")
    elif "data" in kw and kw["data"] is not None:
        data = kw["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    if kw.get("files"):
        request["files"] = kw["files"]
    return request


def _promised(case: Case[Any], response: httpx.Response) -> bool:
    """The 5xx the contract promises: not ready (no relay here), an event not applied yet."""
    if case.path == "/readyz":
        return response.status_code == 503
    kind = response.json().get("type", "") if response.status_code == 504 else ""
    return bool(kind.endswith("/event-not-applied") and "after_event" in (case.query or {}))


@pytest.fixture(params=sorted(BUILDERS))
async def service(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FastAPI, str]]:
    async with running(request.param) as app:
        yield app, request.param


def _answer(request: dict[str, Any], response: httpx.Response) -> str:
    return (
        f"{request['method']} {request['url']} params={request['params']} "
        f"body={request.get('content')!r} -> {response.status_code} {response.text[:300]}"
    )


async def test_no_input_gets_a_5xx_and_every_answer_is_documented(
    service: tuple[FastAPI, str],
) -> None:
    app, name = service
    failures: list[str] = []
    undocumented: list[str] = []
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        for case in _cases(app):
            request = _request(case)
            if not all(value.isascii() for value in request["headers"].values()):
                continue  # drawn for a declared header, but no HTTP client can send it
            response = await client.request(**request)
            if response.status_code >= 500 and not _promised(case, response):
                failures.append(_answer(request, response))
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except FailureGroup as failed:  # one per check that failed
                found = "; ".join(
                    f"{f.title}: {f.message}".split("\n")[0] for f in failed.exceptions
                )
                undocumented.append(f"{case.operation.label} -> {response.status_code}: {found}")
    assert not failures, f"{name}: {len(failures)} answers of 5xx:\n" + "\n".join(failures[:20])
    assert not undocumented, (
        f"{name}: {len(undocumented)} answers the OpenAPI document does not describe:\n"
        + "\n".join(sorted(set(undocumented))[:20])
    )
