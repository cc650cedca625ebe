"""The dashboard's development token exists only outside production (no I/O: the app is not
started, only asked)."""

from __future__ import annotations

import httpx
import pytest

from services.projection.app import build_app
from services.projection.settings import ProjectionSettings
from shared.auth import TokenVerifier


@pytest.mark.parametrize("environment", ["development", "production"])
async def test_dev_token_only_outside_production(environment: str) -> None:
    secret = "a-long-enough-secret-for-this-test-only-0123456789"
    settings = ProjectionSettings(environment=environment, jwt_secret=secret)
    app = build_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/dev/token")
        page = await client.get("/")
    assert page.status_code == 200
    if environment == "production":
        assert response.status_code == 404
    else:
        principal = TokenVerifier(secret=secret).verify(response.json()["token"])
        assert {str(r) for r in principal.roles} == {"observer"}
