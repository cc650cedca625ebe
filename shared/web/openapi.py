"""The OpenAPI document as the service behaves, for integrators who generate clients from it.

FastAPI documents what a route's signature says; the rest of what a client meets comes from
the shared layers, so it is added here from the same facts those layers act on:

- every error is `application/problem+json` (`Problem` schema; FastAPI's `HTTPValidationError`
  is never sent, so it is replaced), with the statuses the route's dependencies can answer:
  400 (a bad `X-Correlation-ID`, anywhere), 401/403 (an `Authorize` rule), 404 (an id in the
  path), 422 (parameters or a body), 413 (a body), 415 (a `Content-Type` check), 429 (a
  `RateLimit`), 409/412 (a command), 503 (the database; and the key set for guarded routes),
  504 (`?after_event=` not applied in time);
- the bearer scheme, with the roles of the route's rule as its scopes (OpenAPI 3.1 lets non-OAuth
  schemes list role names), and an empty requirement on public routes;
- on commands (routes that hand their command to `handle_command`): the `Idempotency-Key` and
  `If-Match` headers, the `ETag` of the answer, and its body (`CommandResult`) where the route
  declares none;
- operation ids: the route function's name (`submit_requirement`), unique per service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from shared.web.access import app_routes, authorizers
from shared.web.commands import MAX_KEY_LENGTH
from shared.web.content import JSON as JSON_BODY
from shared.web.problems import PROBLEM_JSON
from shared.web.ratelimit import RateLimit

SECURITY_SCHEME = "bearer"
PROBLEM = {"$ref": "#/components/schemas/Problem"}
COMMAND_RESULT = {"$ref": "#/components/schemas/CommandResult"}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details; `type` resolves to a page of this service.",
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "example": "/problems/not-found"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    },
    "CommandResult": {
        "title": "CommandResult",
        "description": "The aggregate a command changed, its new version and the event appended "
        "(null when the command changed nothing).",
        "type": "object",
        "required": ["id", "version"],
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "integer"},
            "event_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    },
}

WHY = {
    "400": "A malformed header (X-Correlation-ID, Idempotency-Key, If-Match)",
    "401": "No bearer token, or one that is expired or not ours",
    "403": "The token's roles, nation or hub do not allow this",
    "404": "Nothing with this id (or nothing you may see)",
    "409": "A rule forbids the command now, or the Idempotency-Key was used for another body",
    "412": "If-Match names another version than the current one (see ETag)",
    "413": "The body, or the event it would store, is too large",
    "415": "The body's Content-Type is not one this operation takes",
    "422": "A parameter or field is invalid; `errors` names each",
    "429": "Too many requests; wait for Retry-After",
    "503": "The database or the identity provider's keys are unavailable; retry (Retry-After)",
    "504": "The event named in after_event was not applied in time; ask again",
}
HEADERS: dict[str, Any] = {
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The same key with the same body returns the first answer; nothing is "
        "applied twice. Another body under a used key: 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    },
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'The version you read (its ETag, e.g. "3"); 412 when it is no longer '
        "the current one.",
        "schema": {"type": "string"},
    },
    "X-Correlation-ID": {
        "name": "X-Correlation-ID",
        "in": "header",
        "required": False,
        "description": "Recorded on the events this request causes; echoed on the answer.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
}
ETAG = {
    "description": 'The version now, e.g. "3" (send it as If-Match)',
    "schema": {"type": "string"},
}


def _calls(dependant: Dependant | None) -> Iterator[object]:
    for dependency in dependant.dependencies if dependant is not None else ():
        yield dependency.call
        yield from _calls(dependency)


def _is_command(route: APIRoute) -> bool:
    """A route that hands its command to `handle_command` (docs/CONVENTIONS.md: every POST of
    a command does, in its one line)."""
    code = getattr(route.endpoint, "__code__", None)
    return code is not None and "handle_command" in code.co_names


def _problem(status: str) -> dict[str, Any]:
    return {"description": WHY[status], "content": {PROBLEM_JSON: {"schema": PROBLEM}}}


def _document(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    calls = list(_calls(route.dependant))
    guards = list(authorizers(route.dependant))
    command = method == "POST" and _is_command(route)
    has_body = "requestBody" in operation or any(call is JSON_BODY for call in calls)
    operation["operationId"] = route.name
    roles = sorted({str(role) for guard in guards for role in guard.rule.roles})
    operation["security"] = [{SECURITY_SCHEME: roles}] if guards else []
    parameters = operation.setdefault("parameters", [])
    has_parameters = bool(parameters)
    parameters.append({"$ref": "#/components/parameters/X-Correlation-ID"})
    if command:
        parameters.append({"$ref": "#/components/parameters/Idempotency-Key"})
        if route.param_convertors:
            parameters.append({"$ref": "#/components/parameters/If-Match"})
    statuses = {"400", "503"}
    statuses |= {"401", "403"} if guards else set()
    statuses |= {"404"} if route.param_convertors else set()
    statuses |= {"422"} if has_parameters or has_body else set()
    statuses |= {"413", "415"} if has_body else set()
    statuses |= {"409", "412"} if command else set()
    statuses |= {"429"} if any(isinstance(call, RateLimit) for call in calls) else set()
    statuses |= {"504"} if any(p.get("name") == "after_event" for p in parameters) else set()
    responses = operation.setdefault("responses", {})
    statuses |= {status for status in responses if status[0] in "45"}  # the route's own
    for status in sorted(statuses):
        response = responses.setdefault(status, {})
        declared = response.get("content", {}).get("application/json", {}).get("schema")
        if status == "422" or not declared:  # FastAPI's 422 is never sent; readyz's 503 is
            response.update(_problem(status) | {"description": response.get("description")})
            if status == "422" or not response["description"]:
                response["description"] = WHY[status]
    if any(p.get("name") == "format" for p in parameters):  # ?format=csv: a spreadsheet
        responses["200"].setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
    for status, response in responses.items():
        if not status.startswith("2") or not command:
            continue
        response.setdefault("headers", {})["ETag"] = ETAG
        content = response.setdefault("content", {"application/json": {}})
        for media in content.values():
            if not media.get("schema"):
                media["schema"] = COMMAND_RESULT


def describe(app: FastAPI) -> None:
    """Make `app.openapi()` answer with the document described above (built once)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = plain()
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(SCHEMAS)
        components["parameters"] = HEADERS
        components["securitySchemes"] = {
            SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A token from your identity provider (development: `aidline "
                "token --role …`). Each operation lists the roles it allows; docs/access.md "
                "has the rules in full.",
            }
        }
        for route in app_routes(app):
            original = route.context.original_route
            if not isinstance(original, APIRoute) or not original.include_in_schema:
                continue
            for method in route.methods:
                operation = spec["paths"][route.path][method.lower()]
                _document(operation, original, method)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
