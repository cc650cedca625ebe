"""The four services start against real Kafka and PostgreSQL and answer their probes."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.stack import SERVICES, Stack

WEBSOCKET_HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.mark.parametrize("service", SERVICES)
async def test_probes_docs_and_metrics(stack: Stack, service: str) -> None:
    async with httpx.AsyncClient(base_url=stack.url(service), timeout=10) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready"
        assert ready["checks"]["database"]["ok"] and ready["checks"]["kafka"]["ok"]
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "python_info" in metrics.text
        assert (
            (await client.get("/openapi.json"))
            .json()["info"]["title"]
            .endswith(service + " service")
        )
        missing = await client.get("/no-such-route")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        # No service speaks WebSocket, so none loads a WebSocket library (uvicorn's `ws`):
        # a handshake is answered as the plain HTTP request it also is.
        handshake = await client.get("/healthz", headers=WEBSOCKET_HANDSHAKE)
        assert handshake.status_code == 200 and handshake.json() == {"status": "ok"}


def test_aidline_status_reports_every_service_ready(stack: Stack) -> None:
    from typer.testing import CliRunner

    from shared.cli.main import app

    urls = {f"AIDLINE_{name.upper()}_URL": stack.url(name) for name in SERVICES}
    result = CliRunner().invoke(app, ["status"], env=urls)
    assert result.exit_code == 0, result.output
    assert result.output.count("yes") == len(SERVICES)
    as_json = CliRunner().invoke(app, ["status", "--json"], env=urls)
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["ready"] is True
    assert {n: s["status"] for n, s in document["services"].items()} == dict.fromkeys(
        SERVICES, "ready"
    )
    assert document["services"]["request"]["checks"]["database"]["ok"] is True
