"""Key rotation without a restart: a service verifies RS256 tokens against a JWKS URL served
over real HTTP (uvicorn, in this process); the identity provider rotates its keys while the
service runs. A token signed with the new key is accepted, one with a removed key refused, and
a key set that cannot be fetched is 503, not 401."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.authkit import jwk, rs256
from tests.infra import eventually
from tests.integration.inprocess import running


@dataclass
class IdentityProvider:
    """A JWKS endpoint whose keys the test changes; it counts the fetches."""

    keys: list[dict[str, Any]]
    fetches: int = 0
    down: bool = False
    url: str = ""
    server: uvicorn.Server | None = field(default=None, repr=False)

    async def jwks(self, _request: Request) -> Response:
        if self.down:
            return Response("unavailable", status_code=503)
        self.fetches += 1
        return JSONResponse({"keys": self.keys})


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider(keys=[jwk("idp-2024", "k1")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Starlette(routes=[Route("/certs", provider.jwks)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, timeout=10, what="the JWKS server")
    provider.url, provider.server = f"http://127.0.0.1:{port}/certs", server
    yield provider
    server.should_exit = True
    await task


async def _status(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/hubs", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_keys_rotate_on_the_jwks_url_while_the_service_runs(idp: IdentityProvider) -> None:
    settings = {"jwt_jwks_url": idp.url, "jwt_jwks_cooldown_seconds": 0}
    async with running("projection", **settings) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            before = rs256("idp-2024", "k1")
            assert await _status(client, before) == 200
            assert await _status(client, rs256("idp-2024", "k1", sub="again")) == 200
            assert idp.fetches == 1  # cached: one fetch for both tokens

            # The provider rotates: k2 in, k1 out. No restart.
            idp.keys = [jwk("idp-2025", "k2")]
            assert await _status(client, rs256("idp-2025", "k2")) == 200  # unknown kid: fetched
            assert idp.fetches == 2
            assert await _status(client, rs256("idp-2024", "k1", sub="late")) == 401
            assert await _status(client, before) == 401  # verified before, its key now gone
            # A token naming k2 but signed with another key is still a forgery.
            assert await _status(client, rs256("attacker", "k2")) == 401

            # The provider is away: a new key cannot be looked up — 503, not the token's fault;
            # a token of a key already known still works.
            idp.down = True
            unknown = await client.get(
                "/hubs", headers={"Authorization": f"Bearer {rs256('idp-2026', 'k3')}"}
            )
            assert unknown.status_code == 503, unknown.text
            assert unknown.json()["type"].endswith("/keys-unavailable")
            assert unknown.headers["retry-after"]
            assert await _status(client, rs256("idp-2025", "k2", sub="still")) == 200
