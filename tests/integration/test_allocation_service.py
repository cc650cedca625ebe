"""The allocation service against the real broker and PostgreSQL: request events in on
`aidline.requests`, allocation events out on `aidline.allocations`, harmless redelivery, and the
HTTP API (planner-only commands, If-Match, idempotency, coverage).

Isolation on the shared broker: the service keeps its tables in a schema of its own, its consumer
group has a unique prefix, and every id and item code starts with the test's own prefix.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from services.allocation.app import MIGRATIONS, build_app
from services.allocation.consumers import CONSUMER
from services.allocation.settings import AllocationSettings
from shared.auth import DEV_SECRET, Role, mint_token
from shared.db import Database
from shared.domain import StoredEvent
from shared.eventstore.tables import consumer_offsets
from shared.messaging.topics import ALLOCATIONS, REQUESTS
from shared.runtime import ServiceRuntime
from tests.infra import (
    POSTGRES_URL,
    end_offsets,
    eventually,
    header,
    produce,
    read_topic,
    start_at_the_end,
    unique_schema,
)
from tests.integration.allocation_support import Scenario


def _auth(role: Role, sub: str | None = None) -> dict[str, str]:
    token = mint_token(DEV_SECRET, sub or f"{role}-1", [role])
    return {"Authorization": f"Bearer {token}"}


PLANNER, RECIPIENT, OBSERVER = _auth(Role.PLANNER), _auth(Role.RECIPIENT), _auth(Role.OBSERVER)


@dataclass
class Service:
    app: FastAPI
    runtime: ServiceRuntime
    http: httpx.AsyncClient
    consumer: str

    async def live(self, prefix: str) -> dict[tuple[str, str], int]:
        """Live allocations of requirements whose id starts with `prefix`."""
        result: dict[tuple[str, str], int] = defaultdict(int)
        for status in ("proposed", "approved"):
            response = await self.http.get(
                "/allocations", params={"status": status, "limit": 500}, headers=OBSERVER
            )
            for a in response.json()["items"]:
                if a["requirement_id"].startswith(prefix):
                    result[(a["requirement_id"], a["pledge_id"])] += a["quantity"] - a["lost"]
        return dict(result)

    async def allocations(self, requirement_id: str, status: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/allocations",
            params={"requirement_id": requirement_id, "status": status},
            headers=PLANNER,  # who sees the reasons and the approver (docs/access.md)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def caught_up(self) -> bool:
        """Has the consumer stored offsets up to the current end of `aidline.requests`?"""
        ends = await end_offsets(REQUESTS)
        async with self.runtime.db.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(consumer_offsets).where(
                    consumer_offsets.c.consumer == self.consumer,
                    consumer_offsets.c.topic == REQUESTS,
                )
            )
            stored = {r.partition: r.next_offset for r in rows}
        return all(stored.get(partition, 0) >= end for partition, end in ends.items())


@pytest.fixture(scope="module")
async def service(kafka: str) -> AsyncIterator[Service]:
    schema = unique_schema()
    settings = AllocationSettings(
        database_url=POSTGRES_URL,
        kafka_bootstrap_servers=kafka,
        consumer_group_prefix=f"{schema}-",
        environment="test",
    )
    app = build_app(settings, schema=schema)
    runtime: ServiceRuntime = app.state.runtime
    await start_at_the_end(runtime, MIGRATIONS)
    await runtime.start()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://allocation")
    try:
        yield Service(app, runtime, http, f"{schema}-{CONSUMER}")
    finally:
        await http.aclose()
        await runtime.stop()
        db = Database(POSTGRES_URL, schema)
        await db.drop_schema()
        await db.dispose()


async def _send(events: list[StoredEvent]) -> None:
    await produce(REQUESTS, list[StoredEvent | bytes](events))


async def _published(prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, subject, data) of the allocation events about `prefix`'s requirements."""
    ours: set[str] = set()
    result = []
    for record in await read_topic(ALLOCATIONS):
        if not header(record, "ce_type"):
            continue  # not a CloudEvent (another test's poison message)
        subject, data = header(record, "ce_subject"), json.loads(record.value or b"{}")
        if data.get("requirement_id", "").startswith(prefix):
            ours.add(subject)
        if subject in ours:
            result.append((header(record, "ce_type"), subject, data))
    return result


def _net(published: list[tuple[str, str, dict[str, Any]]]) -> dict[tuple[str, str], int]:
    """Live quantities per (requirement, pledge) as a reader of the topic sees them."""
    proposed: dict[str, dict[str, Any]] = {}
    for kind, subject, data in published:
        if kind == "allocation.proposed":
            proposed[subject] = data
        elif kind in ("allocation.cancelled", "allocation.rejected"):
            proposed.pop(subject, None)
    result: dict[tuple[str, str], int] = defaultdict(int)
    for data in proposed.values():
        result[(data["requirement_id"], data["pledge_id"])] += data["quantity"]
    return dict(result)


def _by_requirement(live: dict[tuple[str, str], int]) -> dict[str, int]:
    result: dict[str, int] = defaultdict(int)
    for (requirement_id, _pledge), quantity in live.items():
        result[requirement_id] += quantity
    return dict(result)


async def test_events_in_events_out_and_redelivery_is_harmless(service: Service) -> None:
    s = Scenario()
    sent: list[StoredEvent] = [
        *s.items(),
        *s.requirement("R1", 100, 1),
        *s.requirement("R2", 50, 3),
        *s.pledge("P1", 80),
        *s.pledge("P2", 40, item=s.substitute),
    ]
    await _send(sent)
    want = {s.id("R1"): 100, s.id("R2"): 20}  # 120 pledged: priority 1 first

    async def planned() -> bool:
        return _by_requirement(await service.live(s.prefix)) == want

    await eventually(planned, timeout=60, what="the plan for the produced events")
    live = await service.live(s.prefix)

    async def published() -> bool:
        return _net(await _published(s.prefix)) == live

    await eventually(published, timeout=60, what="the allocation events on aidline.allocations")
    events = await _published(s.prefix)
    # The last shortfall per requirement (one stream each, so in order on the topic).
    shortfalls = {d["requirement_id"]: d for kind, _s, d in events if kind == "shortfall.recorded"}
    assert shortfalls[s.id("R2")]["open_quantity"] == 30
    assert shortfalls.get(s.id("R1"), {"open_quantity": 0})["open_quantity"] == 0
    ended = {subject for kind, subject, _d in events if kind == "allocation.cancelled"}
    standing = [d for kind, subject, d in events
                if kind == "allocation.proposed" and subject not in ended]  # fmt: skip
    # Artillery items go through RO-SUC (proposals made before the catalogue events arrived
    # on their partition went to the general hub, and were re-issued when they did).
    assert {d["hub"] for d in standing} == {"RO-SUC"}

    # Redelivery: the same events (same ce_id) again change nothing.
    await _send(sent)
    await eventually(service.caught_up, timeout=60, what="the consumer to read the duplicates")
    assert await service.live(s.prefix) == live
    assert sorted(map(repr, await _published(s.prefix))) == sorted(map(repr, events))


async def test_a_withdrawn_pledge_is_replanned_over_the_broker(service: Service) -> None:
    s = Scenario()
    await _send([*s.requirement("R1", 60, 1), *s.pledge("P1", 60)])

    async def covered() -> bool:
        return await service.live(s.prefix) == {(s.id("R1"), s.id("P1")): 60}

    await eventually(covered, timeout=60, what="R1 covered by P1")
    await _send([*s.pledge("P2", 100), s.withdraw("P1", "needed at home")])

    async def moved() -> bool:
        return await service.live(s.prefix) == {(s.id("R1"), s.id("P2")): 60}

    await eventually(moved, timeout=60, what="R1 re-planned onto P2")
    (cancelled,) = await service.allocations(s.id("R1"), "cancelled")
    assert cancelled["reason"] == f"pledge {s.id('P1')} withdrawn: needed at home"


async def _proposal(service: Service, s: Scenario, pledges: list[list[StoredEvent]]) -> str:
    await _send([*s.requirement("R1", 30, 2)] + [e for p in pledges for e in p])

    async def proposed() -> bool:
        return bool(await service.allocations(s.id("R1"), "proposed"))

    await eventually(proposed, timeout=60, what="a proposal")
    (allocation,) = await service.allocations(s.id("R1"), "proposed")
    allocation_id: str = allocation["allocation_id"]
    return allocation_id


async def test_only_planners_approve_with_if_match_and_idempotency(service: Service) -> None:
    s = Scenario()
    allocation_id = await _proposal(service, s, [s.pledge("P1", 30)])
    url = f"/allocations/{allocation_id}/approve"

    assert (await service.http.post(url)).status_code == 401
    forbidden = await service.http.post(url, headers=RECIPIENT)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    assert (await service.http.post(url, headers=OBSERVER)).status_code == 403
    stale = await service.http.post(url, headers={**PLANNER, "If-Match": '"7"'})
    assert stale.status_code == 412
    assert (await service.http.get(f"/allocations/{allocation_id}", headers=OBSERVER)).json()[
        "status"
    ] == "proposed"

    headers = {**PLANNER, "If-Match": '"1"', "Idempotency-Key": f"{s.prefix}-approve"}
    approved = await service.http.post(url, headers=headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["id"] == allocation_id
    assert approved.json()["version"] == 2
    assert approved.headers["ETag"] == '"2"'
    again = await service.http.post(url, headers=headers)
    assert again.json() == approved.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    twice = await service.http.post(url, headers=PLANNER)
    assert twice.status_code == 409
    assert "only a proposed allocation can be approved" in twice.json()["detail"]

    shown = await service.http.get(f"/allocations/{allocation_id}", headers=PLANNER)
    assert shown.headers["ETag"] == '"2"'
    assert (shown.json()["status"], shown.json()["approved_by"]) == ("approved", "planner-1")
    # An observer sees the decision, not the person who took it (docs/access.md).
    observed = (await service.http.get(f"/allocations/{allocation_id}", headers=OBSERVER)).json()
    assert (observed["status"], observed["approved_by"], observed["redacted"]) == (
        "approved",
        None,
        True,
    )


async def test_rejection_replans_without_the_pair_and_coverage_explains(service: Service) -> None:
    s = Scenario()
    await _send(s.items())
    allocation_id = await _proposal(service, s, [s.pledge("P1", 30)])
    await _send(s.pledge("P2", 30, item=s.substitute))
    url = f"/allocations/{allocation_id}/reject"

    assert (await service.http.post(url, json={"reason": "x"}, headers=OBSERVER)).status_code == 403
    missing = await service.http.post(url, json={}, headers=PLANNER)
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["body.reason"]

    async def p2_confirmed() -> bool:
        response = await service.http.get(f"/requirements/{s.id('R1')}/coverage", headers=OBSERVER)
        return any(c["pledge_id"] == s.id("P2") and c["status"] == "confirmed"
                   for c in response.json()["candidates"])  # fmt: skip

    await eventually(p2_confirmed, timeout=60, what="P2 to be confirmed")
    rejected = await service.http.post(url, json={"reason": "donor cannot ship by road"},
                                       headers=PLANNER)  # fmt: skip
    assert rejected.status_code == 200, rejected.text
    assert await service.live(s.prefix) == {(s.id("R1"), s.id("P2")): 30}

    coverage = await service.http.get(f"/requirements/{s.id('R1')}/coverage", headers=RECIPIENT)
    assert coverage.status_code == 200
    body = coverage.json()
    assert (body["quantity"], body["proposed"], body["open"]) == (30, 30, 0)
    why = {c["pledge_id"]: c["why"] for c in body["candidates"]}
    assert why == {
        s.id("P1"): "a planner rejected this pairing",
        s.id("P2"): "used: 30 allocated here (on time)",
    }
    assert body["summary"] == "covered: 0 approved and 30 proposed of 30"
    unknown = await service.http.get(f"/requirements/{s.prefix}-nope/coverage", headers=OBSERVER)
    assert unknown.status_code == 404


async def test_plan_run_is_for_planners_and_keeps_a_settled_plan(service: Service) -> None:
    s = Scenario()
    await _proposal(service, s, [s.pledge("P1", 30)])
    before = await service.live(s.prefix)
    for who in (RECIPIENT, OBSERVER, _auth(Role.FORUM)):
        assert (await service.http.post("/plan/run", headers=who)).status_code == 403
    run = await service.http.post("/plan/run", headers=PLANNER)
    assert run.status_code == 200, run.text
    assert set(run.json()) >= {"id", "version", "event_id", "families", "proposed", "cancelled"}
    assert await service.live(s.prefix) == before


async def test_bad_queries_are_problems_not_errors(service: Service) -> None:
    for params in ({"status": "lost"}, {"limit": 0}, {"offset": -1}):
        response = await service.http.get("/allocations", params=params, headers=OBSERVER)
        assert response.status_code == 422, params
        assert response.json()["errors"]
    missing = await service.http.get("/allocations/AL-missing", headers=OBSERVER)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (
        await service.http.post("/allocations/AL-missing/approve", headers=PLANNER)
    ).status_code == 404
    bad_etag = await service.http.post(
        "/allocations/AL-missing/approve", headers={**PLANNER, "If-Match": "soon"}
    )
    assert bad_etag.status_code == 400
