"""Correlation ids, HTTP metrics and structured logs, in process (no database, no broker: the
app's lifespan, which would connect them, is not run by the in-process transport)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import APIRouter, FastAPI

from shared.domain import Metadata, NewEvent
from shared.eventstore import Transaction
from shared.messaging import topics
from shared.observability import context
from shared.observability.http import HEADER
from shared.observability.logs import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
    resolve_format,
)
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.web.app import create_app

router = APIRouter()


@router.get("/things/{thing_id}")
async def get_thing(thing_id: str) -> dict[str, Any]:
    logging.getLogger("test.handler").info("looked at %s", thing_id, extra={"thing": thing_id})
    return {"id": thing_id, "correlation_id": context.correlation_id()}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("a bug")


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = ServiceSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    runtime = ServiceRuntime(
        settings,
        schema="obs",
        migrations=tmp_path,
        topic=topics.DELIVERIES,
        source="/aidline/delivery",
    )
    return create_app(runtime, title="test", routers=[router])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The access log's and the error handler's records, stamped as the service's handler does."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter("test"))
    loggers = [logging.getLogger(name) for name in ("aidline.access", "shared.web.problems")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield kept
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_the_correlation_id_is_echoed_and_seen_by_the_handler(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/things/t-1", headers={HEADER: "req-42"})
    assert response.headers[HEADER] == "req-42"
    assert response.json()["correlation_id"] == "req-42"
    assert context.correlation_id() is None  # unbound again after the request


async def test_a_missing_correlation_id_is_the_request_id_and_a_bad_one_is_400(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/things/t-1")
    generated = response.headers[HEADER]
    assert str(uuid.UUID(generated)) == generated == response.headers["x-request-id"]
    assert response.json()["correlation_id"] == generated
    for bad in ("has spaces and tabs\t", "x" * 300):
        response = await client.get("/things/t-1", headers={HEADER: bad})
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"


async def test_requests_are_counted_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    thing = f"t-{uuid.uuid4().hex[:8]}"
    await client.get(f"/things/{thing}")
    metrics = (await client.get("/metrics")).text
    labels = 'method="GET",route="/things/{thing_id}",status="200"'
    assert f"aidline_http_requests_total{{{labels}}}" in metrics
    assert f'aidline_http_request_duration_seconds_bucket{{le="0.005",{labels}}}' in metrics
    assert f"aidline_http_request_duration_seconds_count{{{labels}}}" in metrics
    assert thing not in metrics


async def test_unmatched_paths_share_one_series(client: httpx.AsyncClient) -> None:
    await client.get(f"/nothing/{uuid.uuid4().hex}")
    metrics = (await client.get("/metrics")).text
    assert 'route="<unmatched>",status="404"' in metrics


async def test_an_unexpected_error_is_counted_answered_and_logged_with_the_id(
    client: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    response = await client.get("/boom", headers={HEADER: "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers[HEADER] == "boom-1"
    metrics = (await client.get("/metrics")).text
    assert 'aidline_http_requests_total{method="GET",route="/boom",status="500"}' in metrics
    error = next(r for r in records if r.name == "shared.web.problems")
    access = next(r for r in records if getattr(r, "route", None) == "/boom")
    assert error.exc_info and vars(error)["correlation_id"] == "boom-1"
    assert access.levelno == logging.INFO and vars(access)["correlation_id"] == "boom-1"


async def test_one_access_line_per_request_probes_at_debug(
    client: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    await client.get("/things/t-9", headers={HEADER: "acc-1"})
    await client.get("/healthz")
    thing, probe = records[-2:]
    assert thing.levelno == logging.INFO
    fields = {k: vars(thing)[k] for k in ("route", "status", "method", "correlation_id")}
    assert fields == {
        "route": "/things/{thing_id}",
        "status": 200,
        "method": "GET",
        "correlation_id": "acc-1",
    }
    assert probe.levelno == logging.DEBUG


async def test_the_service_publishes_its_topics_asyncapi(client: httpx.AsyncClient) -> None:
    response = await client.get("/asyncapi.yaml")
    assert response.status_code == 200
    document = yaml.safe_load(response.text)
    assert [c["address"] for c in document["channels"].values()] == [topics.DELIVERIES]


def _json_logger(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter("delivery"))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.json.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def test_json_logs_carry_service_correlation_id_and_extras() -> None:
    stream = io.StringIO()
    logger = _json_logger(stream)
    with context.bound("corr-7"):
        logger.info("shipment %s arrived", "S-1", extra={"hub": "PL-RZE"})
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "shipment S-1 arrived"
    assert first["level"] == "INFO" and first["logger"] == logger.name
    assert first["service"] == "delivery" and first["correlation_id"] == "corr-7"
    assert first["hub"] == "PL-RZE"
    assert first["time"].endswith("+00:00")
    assert second["correlation_id"] is None
    assert "ValueError: bad" in second["exception"]


def test_configure_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        stream = io.StringIO()
        configure_logging(service="request", level="INFO", log_format="text")
        handler = configure_logging(service="request", level="INFO", stream=stream)
        assert [h for h in root.handlers if h.get_name() == "aidline"] == [handler]
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        assert json.loads(stream.getvalue())["logger"] == "uvicorn.error"
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_log_format_defaults_to_text_only_in_development() -> None:
    assert resolve_format("auto", "development") == "text"
    assert resolve_format("auto", "production") == "json"
    assert resolve_format("auto", "test") == "json"
    assert resolve_format("json", "development") == "json"
    with pytest.raises(ValueError):
        ServiceSettings(log_format="xml")


def test_appended_events_take_the_bound_ids_unless_they_have_their_own() -> None:
    tx = Transaction(conn=None, store=None)  # type: ignore[arg-type]  # append only queues
    own = Metadata(actor="a", correlation_id="own", causation_id="own-cause")
    with context.bound("corr-1", "cause-1"):
        tx.append("S-1", 0, [NewEvent("x.y", 1, {}), NewEvent("x.y", 1, {}, meta=own)])
    tx.append("S-2", 0, [NewEvent("x.y", 1, {})])
    bound_event, own_event = tx._pending[0].events
    assert (bound_event.meta.correlation_id, bound_event.meta.causation_id) == (
        "corr-1",
        "cause-1",
    )
    assert own_event.meta == own
    assert tx._pending[1].events[0].meta == Metadata()
