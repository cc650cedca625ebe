"""The operators' dashboard in headless Chromium (Debian's package, driven by Playwright):
the page loads under its Content-Security-Policy without a violation, shows a requirement that
came through the topics, and its live feed shows a new event without a reload; its decisions
panel follows a decision to what is stuck, as the viewer's role may see it. Needs
/usr/bin/chromium: `deploy/local/test-tools.sh` installs it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time

import pytest
from playwright.async_api import Browser, Error, expect

from shared.auth import Principal, Role
from shared.auth.visibility import Resource, hidden_fields
from tests.browser.conftest import CSP_VIOLATIONS
from tests.infra import produce
from tests.projection import Projection, Topics, auth, event, token


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
        # A locator assertion, not wait_for_function: when its first look fails, the latter
        # re-evaluates its string predicate inside the page, which the page's CSP refuses
        # ('unsafe-eval'); a locator polls through Playwright's own injected script.
        await expect(page.locator("#status")).to_have_text(re.compile(r"^live"), timeout=15_000)
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


def _collected_in(errors: list[str]) -> Callable[[Error], None]:
    """A page's error handler that adds each error's text to `errors`."""
    return lambda exc: errors.append(str(exc))


def _hides(role: str, field: str) -> bool:
    principal = Principal("viewer", frozenset({Role(role)}))
    return field in (hidden_fields(principal, Resource.PLANNING) or frozenset())


async def test_the_dashboard_follows_a_decision_to_what_is_stuck(
    service: Projection, topics: Topics, browser: Browser
) -> None:
    """The decisions panel lists a decision; opening it shows its lines with what is stuck and
    why — to an observer without any shipment, to a planner with the held shipment's notes."""
    run = uuid.uuid4().hex[:8]
    decision, short, moving = f"DEC-UI-{run}", f"REQ-UI-S-{run}", f"REQ-UI-M-{run}"
    allocation, shipment = f"AL-UI-{run}", f"SHP-UI-{run}"
    requests = [
        submitted(short),
        submitted(moving),
        *(event(r, 2, "requirement.endorsed", {"priority": 1, "decision_id": decision})
          for r in (short, moving)),
        event(decision, 1, "decision.recorded", {
            "decision_id": decision, "meeting_date": "2026-02-27", "reference": f"UDCG {run}",
            "endorsed": [{"requirement_id": r, "priority": 1} for r in (short, moving)],
            "confirmed": []}),
    ]  # fmt: skip
    allocations = [
        event(f"shortfall-{short}", 1, "shortfall.recorded", {
            "requirement_id": short, "open_quantity": 3, "reason": "no pledge of AD-IRIST-SLM"}),
        event(allocation, 1, "allocation.proposed", {
            "allocation_id": allocation, "requirement_id": moving, "pledge_id": f"PLG-UI-{run}",
            "item_code": "AD-IRIST-SLM", "quantity": 3, "hub": "PL-RZE",
            "handover_by": "2099-01-01", "rationale": "-"}),
        event(allocation, 2, "allocation.approved", {"approved_by": "planner-ui"}),
    ]  # fmt: skip
    deliveries = [
        event(shipment, 1, "shipment.planned", {
            "shipment_id": shipment, "allocation_id": allocation, "requirement_id": moving,
            "pledge_id": f"PLG-UI-{run}", "donor": "DE", "item_code": "AD-IRIST-SLM",
            "quantity": 3, "hub": "PL-RZE", "handover_point": "Korczowa"}),
        event(shipment, 2, "shipment.dispatched", {"mode": "road", "carrier_ref": "T"}),
        event(shipment, 3, "shipment.arrived_at_hub", {"hub": "PL-RZE"}),
        event(shipment, 4, "shipment.inspected", {"result": "held", "notes": "seal broken"}),
    ]  # fmt: skip
    for topic, events in (
        (topics.requests, requests),
        (topics.allocations, allocations),
        (topics.deliveries, deliveries),
    ):
        await produce(topic, events)  # type: ignore[arg-type]
        applied = await service.client.get(
            "/decisions", params={"after_event": str(events[-1].event_id)},  # type: ignore[attr-defined]
            headers=auth("observer"),
        )  # fmt: skip
        assert applied.status_code == 200, applied.text
    planner = token("planner")
    for viewer, hash_ in (("observer", ""), ("planner", f"#token={planner}")):
        page = await browser.new_page()
        try:
            errors: list[str] = []
            page.on("pageerror", _collected_in(errors))
            await page.add_init_script(CSP_VIOLATIONS)
            await page.goto(service.url + "/" + hash_)
            row = f'#decisions tr[data-id="{decision}"]'
            await page.wait_for_selector(row, timeout=15_000)
            assert f"UDCG {run}" in await page.inner_text(row)
            await page.click(row)
            line = f'#execution-lines tr[data-id="{short}"]'
            await page.wait_for_selector(line, timeout=15_000)
            # Why: as the table shows a planning record's reasons to the viewer's role.
            why = "" if _hides(viewer, "shortfall_reason") else " (no pledge of AD-IRIST-SLM)"
            assert f"no_allocation{why}" in await page.inner_text(line)
            held = await page.inner_text(f'#execution-lines tr[data-id="{moving}"]')
            assert "held" in held
            assert "1 requirements and 0 pledges without allocation" in await page.inner_text(
                "#execution-stuck"
            )
            shipments = await page.inner_text("#execution-shipments")
            if viewer == "observer":
                assert shipment not in shipments and "seal broken" not in shipments
                assert "yours to see" in shipments
            else:
                assert f"{shipment} held 3 at PL-RZE" in shipments
                assert "held: seal broken" in shipments
            assert errors == []
            assert await page.evaluate("window.cspViolations") == []
        finally:
            await page.close()


async def test_the_chart_spreads_years_of_pledges_over_those_years(
    service: Projection, topics: Topics, browser: Browser
) -> None:
    """Pledges announced 2022 to 2025 (business time, `ce_occurredat`), all recorded today: the
    chart places each on its day, with a tick for each new year, not on one day."""
    run = uuid.uuid4().hex[:8]
    days = [date(2022, 6, 1), date(2023, 3, 15), date(2024, 1, 10), date(2025, 9, 30)]
    pledges = [
        event(f"PLG-UI-{run}-{i}", 1, "pledge.announced", {
            "pledge_id": f"PLG-UI-{run}-{i}", "donor": "DE", "item_code": "ART-155-HE",
            "quantity": 10, "unit": "rounds", "source": "stock", "available_from": "2026-01-01"},
            occurred_at=datetime.combine(day, time.min, UTC))
        for i, day in enumerate(days)
    ]  # fmt: skip
    await produce(topics.requests, pledges)
    applied = await service.client.get(
        "/capabilities/gaps", params={"after_event": str(pledges[-1].event_id)},
        headers=auth("observer"),
    )  # fmt: skip
    assert [p["day"] for p in applied.json()["over_time"]["artillery"]] == [
        d.isoformat() for d in days
    ]
    page = await browser.new_page()
    try:
        await page.goto(service.url + "/")
        await page.wait_for_selector(
            "#chart-capability option:text-is('artillery')", state="attached", timeout=15_000
        )
        await page.select_option("#chart-capability", "artillery")
        await page.wait_for_selector("#chart svg .year-label", timeout=15_000)
        years = await page.eval_on_selector_all(
            "#chart svg .year-label", "ns => ns.map((n) => n.textContent)"
        )
        assert years == ["2023", "2024", "2025"]
        xs = await page.eval_on_selector_all(
            "#chart svg circle[fill='#1f5fa8']", "ns => ns.map((n) => Number(n.getAttribute('cx')))"
        )
        # Each day where it falls between the first and the last (plot from x=56 to x=450).
        span = (days[-1] - days[0]).days
        expected = [56 + (d - days[0]).days / span * 394 for d in days]
        assert xs == pytest.approx(expected, abs=0.2)
    finally:
        await page.close()
