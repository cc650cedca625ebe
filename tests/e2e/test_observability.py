"""A service process logs one JSON object per line, with the caller's correlation id, and counts
its requests on /metrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import LOGS, Stack


@pytest.fixture
async def service(kafka: str, tmp_path: Path) -> AsyncIterator[Stack]:
    stack = Stack(
        f"sqlite+aiosqlite:///{tmp_path}/request.db",
        env_overrides={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
    )
    stack.start("request")
    try:
        await stack.wait_ready("request")
        yield stack
    finally:
        stack.stop_all()


async def test_json_logs_and_http_metrics_of_a_running_service(service: Stack) -> None:
    correlation = f"e2e-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=service.url("request"), timeout=10) as client:
        response = await client.get("/asyncapi.yaml", headers={"X-Correlation-ID": correlation})
        assert response.status_code == 200 and "aidline.requests" in response.text
        assert response.headers["X-Correlation-ID"] == correlation
        metrics = (await client.get("/metrics")).text
    counted = 'aidline_http_requests_total{method="GET",route="/asyncapi.yaml",status="200"}'
    assert counted in metrics
    service.stop_all()  # flushes and closes the log

    lines = (LOGS / f"{service.group_prefix}request.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    assert all(r["service"] == "request" and r["level"] and r["time"] for r in records)
    access = [r for r in records if r["correlation_id"] == correlation]
    assert [(r["logger"], r["route"], r["status"]) for r in access] == [
        ("aidline.access", "/asyncapi.yaml", 200)
    ]
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own, as JSON too
