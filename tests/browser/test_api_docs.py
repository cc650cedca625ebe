"""The API documentation pages in Chromium with every request beyond the service refused, as on
an operations network without internet: Swagger UI (`/docs`) lists the operations and ReDoc
(`/redoc`) renders the reference, both from the service's own assets, under their CSP."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Route

from tests.browser.conftest import CSP_VIOLATIONS
from tests.projection import Projection

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .opblock-summary-path"),  # an operation's row
        ("/redoc", ".api-content h2"),  # an operation's heading
    ],
)
async def test_the_api_docs_need_nothing_from_outside(
    service: Projection, browser: Browser, path: str, rendered: str
) -> None:
    own = urlsplit(service.url).netloc
    outside: list[str] = []

    async def only_the_service(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort("internetdisconnected")

    page = await browser.new_page()
    try:
        await page.route("**/*", only_the_service)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(CSP_VIOLATIONS)
        answer = await page.goto(service.url + path)
        assert answer is not None and answer.status == 200
        assert "script-src 'self';" in answer.headers["content-security-policy"]
        await page.wait_for_selector(rendered, timeout=30_000)
        assert await page.locator(rendered).count() > 3
        assert outside == []
        assert errors == []
        # ReDoc 2's footer asks for its maker's logo from its CDN; the policy refuses it, and
        # the page is complete without it. Nothing else may be refused.
        violations = await page.evaluate("window.cspViolations")
        assert [v for v in violations if v != f"img-src {REDOC_LOGO}"] == []
    finally:
        await page.close()
