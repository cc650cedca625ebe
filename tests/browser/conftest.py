"""The browser suite's fixtures: Debian's headless Chromium driven by Playwright, and a projection
service in development mode (as `make run` starts it) on topics of its own, per test module."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.projection import Projection, Topics, projection_service

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
