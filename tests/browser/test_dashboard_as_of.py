"""The dashboard's "as of" date on the board and its "what changed" panel, in headless Chromium
(the browser and the development-mode service of tests/browser/conftest.py): a need stated 40 days
ago and one stated today; the board as of 35 days ago shows only the first, the changes of the
last 30 days only the second, under the page's Content-Security-Policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from playwright.async_api import Browser

from tests.browser.conftest import CSP_VIOLATIONS
from tests.infra import produce
from tests.projection import Projection, auth, event

NOW = datetime.now(UTC)


def stated(requirement_id: str, days_ago: int) -> object:
    return event(requirement_id, 1, "requirement.submitted", {
        "requirement_id": requirement_id, "item_code": "AD-IRIST-SLM", "quantity": 3,
        "unit": "systems", "priority": 1, "needed_by": "2026-12-24", "destination": "Kyiv",
        "justification": "browser test"}, occurred_at=NOW - timedelta(days=days_ago))  # fmt: skip


async def test_the_board_as_of_a_day_and_what_changed(
    service: Projection, browser: Browser
) -> None:
    old, new = f"REQ-OLD-{uuid.uuid4().hex[:6]}", f"REQ-NEW-{uuid.uuid4().hex[:6]}"
    events = [stated(old, 40), stated(new, 0)]
    await produce(service.env["REQUESTS_TOPIC"], events)  # type: ignore[arg-type]
    applied = await service.client.get(
        f"/board/requirements/{new}", params={"after_event": str(events[1].event_id)},  # type: ignore[attr-defined]
        headers=auth("observer"),
    )  # fmt: skip
    assert applied.status_code == 200, applied.text
    page = await browser.new_page()
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(CSP_VIOLATIONS)
        await page.goto(service.url + "/")
        await page.wait_for_selector(f'#board tr[data-id="{new}"]', timeout=15_000)
        assert await page.query_selector(f'#board tr[data-id="{old}"]') is not None
        # the meeting pack of the last 30 days: the new need only
        await page.wait_for_selector("#changes tbody tr", timeout=15_000)
        pack = await page.inner_text("#changes")
        assert new in pack and old not in pack
        # the board as it stood 35 days ago: the old need only
        as_of = (NOW - timedelta(days=35)).date().isoformat()
        await page.fill('#board-filters input[name="as_of"]', as_of)
        await page.dispatch_event('#board-filters input[name="as_of"]', "change")
        await page.wait_for_selector(
            f'#board tr[data-id="{new}"]', state="detached", timeout=15_000
        )
        assert await page.query_selector(f'#board tr[data-id="{old}"]') is not None
        assert errors == []
        assert await page.evaluate("window.cspViolations") == []
    finally:
        await page.close()
