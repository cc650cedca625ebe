"""Each service's OpenAPI document tells a client generator the truth (shared/web/openapi.py):
readable unique operation ids, the bearer scheme with each operation's roles, problem+json for
every error status, the command headers. No I/O: the apps are built, not started. That the
service answers only as documented is checked against the running service by
tests/integration/test_openapi_fuzz.py."""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter

from shared.settings import ServiceSettings
from shared.web.access import app_routes

SERVICES = ("request", "allocation", "delivery", "projection")
SETTINGS = {
    "request": "RequestSettings",
    "allocation": "AllocationSettings",
    "delivery": "DeliverySettings",
    "projection": "ProjectionSettings",
}


@functools.cache
def _app(service: str) -> FastAPI:
    settings: type[ServiceSettings] = getattr(
        importlib.import_module(f"services.{service}.settings"), SETTINGS[service]
    )
    app: FastAPI = importlib.import_module(f"services.{service}.app").build_app(
        settings(environment="test")
    )
    return app


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> tuple[FastAPI, dict[str, Any]]:
    app = _app(request.param)
    return app, app.openapi()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def test_operation_ids_are_the_route_names(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, spec = service
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    assert all(
        re.fullmatch(r"[a-z][a-z0-9_]*", i) and not i.endswith(("_get", "_post")) for i in ids
    )


def test_every_guarded_operation_names_its_roles(service: tuple[FastAPI, dict[str, Any]]) -> None:
    app, spec = service
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for route in app_routes(app):
        for method in route.methods:
            operation = spec["paths"].get(route.path, {}).get(method.lower())
            if operation is None:  # not in the schema
                continue
            roles = sorted({str(r) for guard in route.guards for r in guard.rule.roles})
            assert operation["security"] == ([{"bearer": roles}] if route.guards else [])
            if route.guards:
                assert {"401", "403"} <= set(operation["responses"]), route.path


def test_every_error_is_a_problem(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, spec = service
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status[0] in "45" and (method, path, status) != ("GET", "/readyz", "503"):
                media = response["content"]
                assert list(media) == ["application/problem+json"], (method, path, status)
                assert media["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_commands_declare_their_headers(service: tuple[FastAPI, dict[str, Any]]) -> None:
    _, spec = service
    commands = 0
    for method, path, operation in _operations(spec):
        names = {p.get("$ref", "").rsplit("/", 1)[-1] for p in operation["parameters"]}
        assert "X-Correlation-ID" in names
        if "Idempotency-Key" not in names:
            continue
        commands += 1
        assert {"409", "412"} <= set(operation["responses"])
        ok = next(r for s, r in operation["responses"].items() if s.startswith("2"))
        assert "ETag" in ok["headers"], (method, path)
        assert ("If-Match" in names) == ("{" in path), (method, path)
    assert commands > 0 or spec["info"]["title"].lower().startswith("aidline projection")


@pytest.mark.parametrize("name", SERVICES)
def test_every_answer_has_a_schema(name: str) -> None:
    spec = _app(name).openapi()
    for method, path, operation in _operations(spec):
        if path == "/healthz":
            continue
        ok = [r for s, r in operation["responses"].items() if s.startswith("2")]
        assert ok and all(
            media.get("schema") for r in ok for media in r.get("content", {}).values()
        ), (method, path)


def _examples(spec: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    """The examples of a body's schema, through `$ref` and `anyOf` (an optional body)."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    found = list(schema.get("examples", []))
    for option in schema.get("anyOf", []):
        found += _examples(spec, option)
    return found


def test_every_request_body_has_an_example_the_service_takes(
    service: tuple[FastAPI, dict[str, Any]],
) -> None:
    app, spec = service
    for route in app_routes(app):
        for method in route.methods:
            operation = spec["paths"].get(route.path, {}).get(method.lower(), {})
            if "requestBody" not in operation:
                continue
            media = operation["requestBody"]["content"]
            found = [e for m in media.values() for e in _examples(spec, m.get("schema", {}))]
            found += [m["example"] for m in media.values() if "example" in m]
            assert found, f"{method} {route.path}: no example"
            body = route.context.original_route.dependant.body_params  # type: ignore[attr-defined]
            if body and "application/json" in media:
                adapter = TypeAdapter(body[0].field_info.annotation)
                for example in found:
                    adapter.validate_python(example)  # raises, naming the field, if not


def test_every_list_answers_the_one_envelope(service: tuple[FastAPI, dict[str, Any]]) -> None:
    """A list's 200 is `{items, total, limit, offset, next_offset}` (and may add members), and
    it takes `limit` (1..500, default 50) and `offset`."""
    _, spec = service
    schemas = spec["components"]["schemas"]
    lists = 0
    for _method, path, operation in _operations(spec):
        schema = (
            operation["responses"].get("200", {}).get("content", {}).get("application/json", {})
        ).get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        if not name.endswith("Page"):
            continue
        lists += 1
        envelope = schemas[name]
        assert {"items", "total", "limit", "offset", "next_offset"} <= set(envelope["required"])
        assert envelope["properties"]["items"]["type"] == "array", name
        limit = next(p for p in operation["parameters"] if p.get("name") == "limit")["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50), path
        assert any(p.get("name") == "offset" for p in operation["parameters"]), path
    assert lists >= 2  # every service's dead letters, and at least one list of its own


def test_the_live_stream_is_declared_as_server_sent_events() -> None:
    spec = _app("projection").openapi()
    content = spec["paths"]["/events/stream"]["get"]["responses"]["200"]["content"]
    assert content["text/event-stream"]["schema"] == {"type": "string"}
