"""The operators' dashboard in headless Chromium (Debian's package, driven by Playwright):
the page loads under its Content-Security-Policy without a violation, shows a requirement that
came through the topics, and its live feed shows a new event without a reload. Needs
/usr/bin/chromium: `deploy/local/test-tools.sh` installs it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.infra import produce
from tests.projection import Projection, Topics, auth, event, projection_service

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing; run deploy/local/test-tools.sh", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture(scope="module")
async def topics(kafka: str) -> Topics:
    # Fresh topics, where the request service would write: the shared ones grow with every
    # run on a long-lived broker, and replaying them all would make this test slow.
    return await Topics.fresh()


@pytest.fixture(scope="module")
async def service(topics: Topics) -> AsyncIterator[Projection]:
    # Development mode, as `make run`: the page takes its token from /dev/token (loopback).
    async with projection_service(topics, ENVIRONMENT="development") as svc:
        yield svc


def submitted(requirement_id: str, item_code: str = "AD-IRIST-SLM") -> object:
    return event(requirement_id, 1, "requirement.submitted", {
        "requirement_id": requirement_id, "item_code": item_code, "quantity": 3,
        "unit": "systems", "priority": 1, "needed_by": "2026-12-24", "destination": "Kyiv",
        "justification": "browser test"}, actor="recipient-browser")  # fmt: skip


async def test_the_dashboard_shows_the_board_and_live_events(
    service: Projection, topics: Topics, browser: Browser
) -> None:
    first = f"REQ-UI-{uuid.uuid4().hex[:8]}"
    created = submitted(first)
    await produce(topics.requests, [created])  # type: ignore[list-item]
    applied = await service.client.get(
        f"/board/requirements/{first}", params={"after_event": str(created.event_id)},  # type: ignore[attr-defined]
        headers=auth("observer"),
    )  # fmt: skip
    assert applied.status_code == 200, applied.text
    page = await browser.new_page()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        # Every violation of the page's Content-Security-Policy, as the browser reports it.
        await page.add_init_script(CSP_VIOLATIONS)
        answer = await page.goto(service.url + "/")
        assert answer is not None
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        await page.wait_for_selector(f'#board tr[data-id="{first}"]', timeout=15_000)
        assert "air_defence" in await page.inner_text(f'#board tr[data-id="{first}"]')
        await page.wait_for_function(
            "document.querySelector('#status').textContent.startsWith('live')", timeout=15_000
        )
        await page.wait_for_selector("#chart svg", timeout=15_000)
        second = f"REQ-UI-{uuid.uuid4().hex[:8]}"
        await produce(topics.requests, [submitted(second)])  # type: ignore[list-item]
        await page.wait_for_selector(f'#feed li[data-subject="{second}"]', timeout=15_000)
        # The tables refresh from the feed, without a reload.
        await page.wait_for_selector(f'#board tr[data-id="{second}"]', timeout=15_000)
        assert errors == []
        assert [m for m in console if "Content Security Policy" in m] == []
        assert await page.evaluate("window.cspViolations") == []
    finally:
        await page.close()
