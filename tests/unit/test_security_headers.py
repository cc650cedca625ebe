"""Every answer carries the security headers; the dashboard's page and assets the strict
policy, the API documentation pages the one that lets them load (no I/O: the app is not
started, only asked)."""

from __future__ import annotations

import httpx
import pytest

from services.projection.app import build_app
from services.projection.settings import ProjectionSettings
from shared.web.headers import CSP, DOCS_CSP


@pytest.fixture(scope="module")
def app() -> object:
    return build_app(ProjectionSettings(environment="test"))


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        ("/", CSP),
        ("/static/dashboard.js", CSP),
        ("/static/dashboard.css", CSP),
        ("/static/missing.js", CSP),
        ("/healthz", CSP),
        ("/board/requirements", CSP),  # a 401 problem
        ("/openapi.json", CSP),
        ("/docs", DOCS_CSP),
        ("/redoc", DOCS_CSP),
        ("/docs/swagger-init.js", CSP),
        ("/docs/assets/swagger-ui-bundle.js", CSP),
    ],
)
async def test_every_answer_carries_the_security_headers(
    app: object, path: str, policy: str
) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path)
    assert response.headers["content-security-policy"] == policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_the_strict_policy_allows_nothing_inline_or_foreign() -> None:
    assert CSP.startswith("default-src 'self';")
    assert "unsafe" not in CSP and "http" not in CSP


def test_the_docs_policy_allows_scripts_from_the_service_only() -> None:
    assert "script-src 'self';" in DOCS_CSP
    assert "http" not in DOCS_CSP and "unsafe-eval" not in DOCS_CSP
