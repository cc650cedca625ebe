"""`make run`'s demo scenario, played through the HTTP API against a stack of its own, tells its
story in business time: needs and pledges over months, two forum meetings weeks apart, the
chart spanning those months, each decision's execution counted from its meeting, the meeting
pack between the meetings and the board as it stood after the first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.auth import DEV_SECRET, Role
from shared.demo.client import AidlineClient, Endpoints
from shared.demo.scenario import MEETINGS, play
from tests.e2e.stack import SERVICES, Stack, create_database, drop_database
from tests.infra import eventually


@pytest.fixture
async def demo_stack(kafka: str) -> AsyncIterator[Stack]:
    # A stack of its own: the demo plans and approves every open proposal it sees.
    database_url = await create_database()
    stack = Stack(database_url, env_overrides={"CONSUMER_START_AT": "latest"})
    try:
        for service in SERVICES:
            stack.start(service)
        await asyncio.gather(*(stack.wait_ready(service) for service in SERVICES))
        yield stack
    finally:
        stack.stop_all()
        await drop_database(database_url)


async def test_the_demo_spans_months_and_two_meetings(demo_stack: Stack) -> None:
    today = datetime.now(UTC).date()
    endpoints = Endpoints(*(demo_stack.url(s) for s in ("request", "allocation", "delivery",
                                                          "projection")))  # fmt: skip
    client = AidlineClient(DEV_SECRET, endpoints)
    try:
        played = await play(client, say=lambda _: None)
        received = [sid for sid, status in played.shipments.items() if status == "received"]
        assert len(played.decisions) == len(MEETINGS) and received

        async def projected() -> bool:
            listed = await client.get("projection", "/decisions", Role.FORUM)
            gaps = await client.get("projection", "/capabilities/gaps", Role.OBSERVER)
            handed_today = any(
                p["day"] >= today.isoformat() and p["delivered"]
                for s in gaps["over_time"].values()
                for p in s
            )
            return bool(listed["total"] == len(MEETINGS) and handed_today)

        await eventually(projected, timeout=60, what="the demo in the projection")
        decisions = (await client.get("projection", "/decisions", Role.FORUM))["items"]
        meetings = sorted(date.fromisoformat(d["meeting_date"]) for d in decisions)
        assert meetings == sorted(today - timedelta(days=days) for _, days in MEETINGS)
        for decision in decisions:
            decided = date.fromisoformat(decision["meeting_date"])
            execution = await client.get(
                "projection", f"/decisions/{decision['decision_id']}/execution", Role.PLANNER
            )
            days = [x["days_to_allocated"] for x in execution["lines"] if x["days_to_allocated"]]
            # Executed today, counted from the meeting (not from when it was recorded).
            assert days and min(days) >= (today - decided).days, execution
        # The meeting pack between the two meetings, as the forum reads it, and the board as
        # it stood the day after the first.
        first, second = sorted(meetings)
        after_first = (first + timedelta(days=1)).isoformat()
        pack = await client.get(
            "projection", f"/changes?from={after_first}&to={second}&limit=500", Role.FORUM
        )
        kinds = {line["kind"] for line in pack["items"]}
        assert "decision" in kinds and kinds & {"need", "pledge"}, kinds
        assert all("shipment_id" not in line for line in pack["items"])
        then = await client.get(
            "projection", f"/board/requirements?as_of={after_first}&limit=500", Role.OBSERVER
        )
        now = await client.get("projection", "/board/requirements?limit=500", Role.OBSERVER)
        assert 0 < then["total"] < now["total"], (then["total"], now["total"])
        gaps = await client.get("projection", "/capabilities/gaps", Role.OBSERVER)
        days_charted = sorted({p["day"] for s in gaps["over_time"].values() for p in s})
        first, last = date.fromisoformat(days_charted[0]), date.fromisoformat(days_charted[-1])
        assert (last - first).days >= 120 and last >= today, days_charted  # (midnight may pass)
    finally:
        await client.close()
