"""The dashboard's development token is handed out only in development, with the HS256 secret,
and to a client on this machine (no I/O: the app is not started, only asked)."""

from __future__ import annotations

import httpx
import pytest

from services.projection.app import build_app
from services.projection.settings import ProjectionSettings
from shared.auth import TokenVerifier

SECRET = "a-long-enough-secret-for-this-test-only-0123456789"


async def _dev_token(environment: str, client: str) -> httpx.Response:
    app = build_app(ProjectionSettings(environment=environment, jwt_secret=SECRET))
    transport = httpx.ASGITransport(app=app, client=(client, 51234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/")).status_code == 200  # the page itself is public
        return await http.get("/dev/token")


@pytest.mark.parametrize("client", ["127.0.0.1", "127.0.1.1", "::1"])
async def test_a_local_client_in_development_gets_an_observer_token(client: str) -> None:
    response = await _dev_token("development", client)
    assert response.status_code == 200
    principal = TokenVerifier(secret=SECRET).verify(response.json()["token"])
    assert {str(r) for r in principal.roles} == {"observer"}


@pytest.mark.parametrize(
    ("environment", "client"),
    [
        ("development", "192.168.1.20"),  # another machine on the network
        ("development", "172.17.0.1"),  # Docker's gateway: a published port, seen from inside
        ("development", "2001:db8::1"),
        ("test", "127.0.0.1"),
        ("production", "127.0.0.1"),
    ],
)
async def test_no_token_elsewhere(environment: str, client: str) -> None:
    response = await _dev_token(environment, client)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "token" not in response.json()
