"""A command that meets its database unavailable (restarting, unreachable, read-only, full)
is answered 503 problem+json with Retry-After — not 500: a moment later the same request may
succeed, and its Idempotency-Key makes a retry safe. Anything else stays a logged 500."""

from __future__ import annotations

from types import SimpleNamespace

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from shared.db.postgres import PostgresDialect
from shared.web.problems import install_problem_handlers


def _app(error: Exception) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = SimpleNamespace(db=SimpleNamespace(dialect=PostgresDialect()))

    @app.post("/things")
    async def things() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        OperationalError(
            "INSERT",
            None,
            asyncpg.exceptions.CannotConnectNowError("starting up"),
        ),
        OperationalError(
            "INSERT",
            None,
            asyncpg.exceptions.AdminShutdownError("terminating connection"),
        ),
    ],
    ids=["refused", "starting-up", "admin-shutdown"],
)
def test_a_database_that_does_not_answer_is_a_503_to_retry(error: Exception) -> None:
    response = _app(error).post("/things")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"].endswith("/database-unavailable")
    assert "Idempotency-Key" in body["detail"]


def test_any_other_error_stays_a_500() -> None:
    response = _app(ValueError("a bug")).post("/things")
    assert response.status_code == 500
    assert response.json()["title"] == "Internal error"
