"""RFC 9457 problem details: the one error shape every service answers with."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db.failures import database_unavailable
from shared.domain.errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
    VersionMismatch,
)
from shared.web.problem_types import type_uri

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise anywhere below a route to answer with problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors
        self.headers = headers

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": type_uri(self.kind),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's validation errors as the `errors` member: field, message, type."""
    return [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())),
            "message": err.get("msg", "invalid"),
            "type": err.get("type", "value_error"),
        }
        for err in errors
    ]


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def problem_for(exc: Exception) -> Problem:
    """The answer to an error of the domain or a command handler (shared.domain.errors)."""
    match exc:
        case NotFound():
            return Problem(404, "Not found", str(exc), kind="not-found")
        case Forbidden(kind=kind):
            return Problem(403, "Forbidden", str(exc), kind=kind)
        case VersionMismatch(current=current):
            return Problem(
                412,
                "Precondition failed",
                str(exc),
                kind="version-mismatch",
                headers={"ETag": f'"{current}"'},
            )
        case TooLarge(errors=errors):
            return Problem(
                413, "Content too large", str(exc), kind="event-too-large", errors=_named(errors)
            )
        case InvalidInput(errors=errors):
            return Problem(
                422, "Invalid request", str(exc), kind="invalid-request", errors=_named(errors)
            )
        case DomainError(kind=kind, title=title):
            return Problem(409, title, str(exc), kind=kind)
        case _:
            raise TypeError(f"not an error of the domain: {exc!r}")


def _named(errors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"field": field, "message": message} for field, message in errors]


# The database did not answer (restarting, unreachable, read-only, full): the caller's fault it
# is not, and a moment later the same request may succeed. The outcome of a commit cut off
# mid-way is unknown to us too, hence the advice to retry with the same Idempotency-Key.
DATABASE_UNAVAILABLE = Problem(
    503,
    "Database unavailable",
    "The service's database did not answer; the command may not have been stored. Send it "
    "again in a moment, with the same Idempotency-Key to have it applied once.",
    headers={"Retry-After": "1"},
)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(DomainError)
    @app.exception_handler(NotFound)
    @app.exception_handler(Forbidden)
    @app.exception_handler(VersionMismatch)
    @app.exception_handler(InvalidInput)
    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(problem_for(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = Problem(
            422,
            "Invalid request",
            "The request does not match the schema.",
            errors=field_errors(exc.errors()),
        )
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {
            401: "Unauthorized",
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
        }.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(Problem(exc.status_code, title, detail, headers=headers), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None and database_unavailable(exc, runtime.db.dialect):
            log.warning("database unavailable on %s %s: %r", request.method, request.url.path,
                        exc)  # fmt: skip
            return problem_response(DATABASE_UNAVAILABLE, request)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(500, "Internal error", "An unexpected error occurred; it has been logged."),
            request,
        )
