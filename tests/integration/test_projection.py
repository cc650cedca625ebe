"""The projection service against the real broker and PostgreSQL: read models over HTTP,
exactly-once under redelivery, read-your-writes, the live stream, rebuild, access rules."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.domain import StoredEvent
from tests.infra import eventually, produce
from tests.projection import Projection, Topics, auth, event, projection_service


@pytest.fixture(scope="module")
async def topics(kafka: str) -> Topics:
    return await Topics.fresh()


@pytest.fixture(scope="module")
async def service(topics: Topics) -> AsyncIterator[Projection]:
    async with projection_service(topics, READ_YOUR_WRITES_TIMEOUT="6") as svc:
        yield svc


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Scenario:
    """One requirement's whole way, from submission to handover, as the topics carry it."""

    def __init__(self, donor: str = "DE", hub: str = "PL-RZE", quantity: int = 100) -> None:
        self.requirement, self.pledge = uid("REQ"), uid("PLG")
        self.allocation, self.shipment = uid("ALC"), uid("SHP")
        self.donor, self.hub, self.quantity = donor, hub, quantity

    def requests(self) -> list[StoredEvent]:
        r, p = self.requirement, self.pledge
        submitted = event(
            r,
            1,
            "requirement.submitted",
            {
                "requirement_id": r,
                "item_code": "ART-155-HE",
                "quantity": self.quantity,
                "unit": "rounds",
                "priority": 1,
                "needed_by": "2026-12-31",
                "destination": "Lviv",
                "justification": "counter-battery",
            },
            actor="recipient-1",
        )
        return [
            submitted,
            event(
                r,
                2,
                "requirement.endorsed",
                {"priority": 1, "decision_id": "D-1"},
                actor="forum-1",
                causation_id=str(submitted.event_id),
            ),
            event(
                p,
                1,
                "pledge.announced",
                {
                    "pledge_id": p,
                    "donor": self.donor,
                    "item_code": "ART-155-HE",
                    "quantity": self.quantity * 2,
                    "unit": "rounds",
                    "source": "stock",
                    "available_from": "2026-11-01",
                    "value_eur": 2000.0 * self.quantity,
                },
            ),
            event(p, 2, "pledge.confirmed", {"decision_id": "D-1"}),
        ]

    def allocations(self) -> list[StoredEvent]:
        a = self.allocation
        return [
            event(
                a,
                1,
                "allocation.proposed",
                {
                    "allocation_id": a,
                    "requirement_id": self.requirement,
                    "pledge_id": self.pledge,
                    "item_code": "ART-155-HE",
                    "quantity": self.quantity,
                    "hub": self.hub,
                    "handover_by": "2099-01-01",
                    "rationale": "closest stock",
                },
            ),
            event(a, 2, "allocation.approved", {"approved_by": "planner-1"}),
        ]

    def deliveries(self, *, until: str = "shipment.handed_over") -> list[StoredEvent]:
        s = self.shipment
        steps: list[tuple[str, dict[str, Any]]] = [
            (
                "shipment.planned",
                {
                    "shipment_id": s,
                    "allocation_id": self.allocation,
                    "requirement_id": self.requirement,
                    "pledge_id": self.pledge,
                    "donor": self.donor,
                    "item_code": "ART-155-HE",
                    "quantity": self.quantity,
                    "hub": self.hub,
                    "handover_point": "Korczowa",
                },
            ),
            ("shipment.dispatched", {"mode": "road", "carrier_ref": "TRUCK-42", "serials": []}),
            ("shipment.arrived_at_hub", {"hub": self.hub}),
            ("shipment.inspected", {"result": "passed", "notes": ""}),
            ("shipment.departed_hub", {}),
            (
                "shipment.handed_over",
                {"received_good": self.quantity, "damaged": 0, "short": 0, "serials": []},
            ),
        ]
        out = []
        for version, (kind, data) in enumerate(steps, start=1):
            out.append(event(s, version, kind, data, actor=f"actor-{kind}"))
            if kind == until:
                break
        return out


async def get(service: Projection, path: str, role: str = "observer", **params: Any) -> Any:
    response = await service.client.get(path, params=params, headers=auth(role))
    assert response.status_code == 200, response.text
    return response.json()


async def row(service: Projection, requirement_id: str, after: StoredEvent) -> dict[str, Any]:
    found: dict[str, Any] = await get(
        service, f"/board/requirements/{requirement_id}", after_event=str(after.event_id)
    )
    return found


async def test_the_board_follows_a_requirement_to_handover(
    service: Projection, topics: Topics
) -> None:
    s = Scenario()
    # Allocations first: the topics are read in parallel, so order across them is not given.
    await produce(topics.allocations, s.allocations())
    requests = s.requests()
    await produce(topics.requests, requests)
    r = await row(service, s.requirement, requests[-1])
    await eventually(lambda: _status_is(service, s.requirement, "covered"), what="coverage")
    r = await get(service, f"/board/requirements/{s.requirement}")
    assert (r["requested"], r["pledged"], r["allocated"], r["capability"]) == (
        100,
        100,
        100,
        "artillery",
    )
    deliveries = s.deliveries(until="shipment.arrived_at_hub")
    await produce(topics.deliveries, deliveries)
    r = await row(service, s.requirement, deliveries[-1])
    assert (r["status"], r["in_transit"], r["delivered"]) == ("in_transit", 100, 0)
    hub = await get(service, f"/hubs/{s.hub}", role="planner")
    assert s.shipment in [x["shipment_id"] for x in hub["on_hand_shipments"]]
    rest = s.deliveries()[3:]
    await produce(topics.deliveries, rest)
    r = await row(service, s.requirement, rest[-1])
    assert (r["status"], r["in_transit"], r["delivered"]) == ("delivered", 0, 100)
    ledger = await get(service, f"/donors/{s.donor}/ledger", after_event=str(rest[-1].event_id))
    assert ledger["totals"]["handed_over_quantity"] >= 100
    assert ledger["totals"]["handed_over_eur"] >= 100_000
    assert ledger["on_time_rate"] is not None
    gaps = await get(service, "/capabilities/gaps")
    artillery = next(c for c in gaps["capabilities"] if c["capability"] == "artillery")
    assert artillery["delivered"] >= 100 and artillery["pledged"] >= 200
    assert gaps["over_time"]["artillery"][-1]["delivered"] >= 100


async def _status_is(service: Projection, requirement_id: str, status: str) -> bool:
    response = await service.client.get(
        f"/board/requirements/{requirement_id}", headers=auth("observer")
    )
    return response.status_code == 200 and response.json()["status"] == status


async def test_filters_and_csv(service: Projection, topics: Topics) -> None:
    s = Scenario()
    requests = s.requests()
    await produce(topics.requests, requests)
    await row(service, s.requirement, requests[-1])
    found = await get(
        service, "/board/requirements", capability="artillery", status="endorsed", priority=1
    )
    assert s.requirement in [r["requirement_id"] for r in found["items"]]
    assert all(r["status"] == "endorsed" for r in found["items"])
    assert found["total"] == len(found["items"]) and found["next_offset"] is None
    every = await get(service, "/board/requirements", limit="1")
    assert (len(every["items"]), every["next_offset"]) == (1, 1 if every["total"] > 1 else None)
    none = await get(service, "/board/requirements", capability="maritime", priority=1)
    assert s.requirement not in [r["requirement_id"] for r in none["items"]]
    csv = await service.client.get(
        "/board/requirements",
        params={"format": "csv", "status": "endorsed"},
        headers=auth("donor", nation="PL"),
    )
    assert csv.headers["content-type"].startswith("text/csv")
    header, *lines = csv.text.splitlines()
    assert header.startswith("requirement_id,item_code,item_name,capability")
    assert any(line.startswith(s.requirement + ",") for line in lines)
    bad = await service.client.get(
        "/board/requirements", params={"priority": 9, "status": "lost"}, headers=auth("observer")
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"query.priority", "query.status"}


async def test_redelivered_events_change_nothing(service: Projection, topics: Topics) -> None:
    s = Scenario(quantity=7)
    requests, allocations = s.requests(), s.allocations()
    await produce(topics.requests, requests)
    await produce(topics.allocations, allocations)
    await row(service, s.requirement, allocations[-1])
    before = await get(
        service, f"/board/requirements/{s.requirement}", after_event=str(requests[-1].event_id)
    )
    # The relay may publish again after a crash: same ce_id at new offsets.
    marker = event(s.requirement, 3, "requirement.amended", {"priority": 2})
    await produce(topics.requests, [*requests, marker])
    await produce(topics.allocations, allocations)
    after = await row(service, s.requirement, marker)
    assert after["pledged"] == before["pledged"] == 7
    assert after["allocated"] == before["allocated"] == 7
    assert after["priority"] == 2
    trail = await get(service, f"/audit/{s.requirement}")
    assert len(trail["events"]) == 3


async def test_after_event_waits_then_answers_504(service: Projection, topics: Topics) -> None:
    late = event(uid("REQ"), 1, "requirement.cancelled", {"reason": "test"})
    waiting = asyncio.create_task(
        service.client.get(
            f"/audit/{late.stream_id}",
            params={"after_event": str(late.event_id)},
            headers=auth("observer"),
        )
    )
    await produce(topics.requests, [late])
    answered = await waiting
    assert answered.status_code == 200, answered.text
    assert answered.json()["events"][0]["event_type"] == "requirement.cancelled"
    never = await service.client.get(
        "/board/requirements", params={"after_event": str(uuid.uuid4())}, headers=auth("observer")
    )
    assert never.status_code == 504
    assert never.headers["content-type"] == "application/problem+json"
    bad = await service.client.get(
        "/board/requirements", params={"after_event": "nope"}, headers=auth("observer")
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.after_event"


async def test_unknown_event_types_are_audited_not_projected(
    service: Projection, topics: Topics
) -> None:
    s = Scenario()
    requests = s.requests()[:1]
    future = event(s.requirement, 2, "requirement.teleported", {"where": "moon"})
    await produce(topics.requests, [*requests, future])
    r = await row(service, s.requirement, future)
    assert r["status"] == "submitted"
    trail = await get(service, f"/audit/{s.requirement}", role="planner")
    assert [e["event_type"] for e in trail["events"]] == [
        "requirement.submitted",
        "requirement.teleported",
    ]
    first = trail["events"][0]
    assert first["actor"] == "recipient-1" and first["correlation_id"]
    status = await get(service, "/admin/status")
    assert status["dead_lettered"] == 0


async def test_shipment_details_only_for_those_who_may_see_them(
    service: Projection, topics: Topics
) -> None:
    s = Scenario(donor="NL", hub="PL-RZE")
    deliveries = s.deliveries(until="shipment.dispatched")
    await produce(topics.deliveries, deliveries)
    path = f"/shipments/{s.shipment}/timeline"
    seen = await get(service, path, role="planner", after_event=str(deliveries[-1].event_id))
    assert seen["shipment"]["carrier_ref"] == "TRUCK-42"
    assert seen["milestones"][1]["data"]["carrier_ref"] == "TRUCK-42"
    for headers in (auth("hub", hub="PL-RZE"), auth("recipient")):
        ok = await service.client.get(path, headers=headers)
        assert ok.json()["shipment"]["carrier_ref"] == "TRUCK-42"
    # The donor's own shipment: no route or timing, no people.
    hidden = await service.client.get(path, headers=auth("donor", nation="NL"))
    assert hidden.status_code == 200
    assert "carrier_ref" not in hidden.json()["shipment"]
    assert "carrier_ref" not in hidden.json()["milestones"][1]["data"]
    assert "actor" not in hidden.json()["milestones"][1]
    # Another hub's operator, another nation, aggregates-only roles: refused, not redacted.
    for headers in (auth("hub", hub="RO-SUC"), auth("donor", nation="FR"), auth("observer"),
                    auth("forum")):  # fmt: skip
        for refused in (path, f"/audit/{s.shipment}"):
            answer = await service.client.get(refused, headers=headers)
            assert answer.status_code == 403, answer.text
            assert s.shipment not in answer.json()["detail"]
    hub = await get(service, "/hubs/PL-RZE", role="observer")
    assert hub["inbound_shipments"] == [] and hub["inbound"]["shipments"] >= 1
    unknown = await service.client.get("/hubs/XX-NOPE", headers=auth("planner"))
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/board/requirements",
        "/board/requirements/R-1",
        "/donors/DE/ledger",
        "/capabilities/gaps",
        "/hubs/PL-RZE",
        "/shipments/S-1/timeline",
        "/audit/R-1",
        "/events/stream",
        "/admin/status",
    ],
)
async def test_every_read_needs_a_token(service: Projection, path: str) -> None:
    response = await service.client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    forged = await service.client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code == 401


async def test_the_dashboard_page_is_public_and_hands_out_no_token_outside_development(
    service: Projection,
) -> None:
    page = await service.client.get("/")
    assert page.status_code == 200 and "<title>Aidline" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = await service.client.get("/static/dashboard.js")
    assert script.status_code == 200 and "EventSource" in script.text
    # ENVIRONMENT=test: no development token, even for a client on this machine (the
    # dashboard's token in development: tests/unit/test_projection_dev_token.py, the browser).
    assert (await service.client.get("/dev/token")).status_code == 404


# -- the live stream -------------------------------------------------------------------------


async def sse(
    service: Projection, count: int, *, last_event_id: str | None = None, **params: str
) -> list[dict[str, Any]]:
    """Read `count` events from the live stream (after it says it is live)."""
    headers = auth("planner") | ({"Last-Event-ID": last_event_id} if last_event_id else {})
    events: list[dict[str, Any]] = []
    async with service.client.stream(
        "GET", "/events/stream", params=params, headers=headers
    ) as response:
        assert response.status_code == 200
        event_id = None
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                record = json.loads(line[5:].strip())
                assert record["id"] == event_id
                events.append(record)
                if len(events) == count:
                    return events
    return events


async def test_stream_filters_and_resumes(service: Projection, topics: Topics) -> None:
    s = Scenario()
    requests = s.requests()
    reader = asyncio.create_task(
        sse(service, 2, types="requirement.submitted,requirement.endorsed", subject=s.requirement)
    )
    await _until_subscribed(service)
    await produce(topics.requests, requests)
    got = await asyncio.wait_for(reader, 30)
    assert [e["type"] for e in got] == ["requirement.submitted", "requirement.endorsed"]
    assert got[0]["data"]["requirement_id"] == s.requirement
    assert got[0]["actor"] == "recipient-1"
    assert got[1]["causation_id"] == str(requests[0].event_id)
    # Resume after the first: the second comes again, then live ones.
    more = event(s.requirement, 3, "requirement.amended", {"quantity": 5})
    await produce(topics.requests, [more])
    await row(service, s.requirement, more)
    resumed = await asyncio.wait_for(
        sse(service, 2, last_event_id=got[0]["id"], subject=s.requirement), 30
    )
    assert [e["id"] for e in resumed] == [str(requests[1].event_id), str(more.event_id)]


async def _until_subscribed(service: Projection) -> None:
    """The stream subscribes before it says it is live; wait for a subscriber to exist by
    opening (and closing) one more stream."""
    async with service.client.stream("GET", "/events/stream", headers=auth("observer")) as response:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                return


# -- rebuild ---------------------------------------------------------------------------------


async def test_rebuild_gives_the_same_board(service: Projection, topics: Topics) -> None:
    s = Scenario()
    await produce(topics.requests, s.requests())
    await produce(topics.allocations, s.allocations())
    last = s.deliveries(until="shipment.inspected")
    await produce(topics.deliveries, last)
    await row(service, s.requirement, last[-1])
    before = await get(service, "/board/requirements", limit=500)
    status = await get(service, "/admin/status")
    forbidden = await service.client.post("/admin/rebuild", headers=auth("planner"))
    assert forbidden.status_code == 403
    key = {"Idempotency-Key": uid("rebuild")}
    started = await service.client.post("/admin/rebuild", headers=auth("admin") | key)
    assert started.status_code == 202, started.text
    again = await service.client.post("/admin/rebuild", headers=auth("admin") | key)
    assert again.json() == started.json()
    generation = started.json()["generation"]
    assert generation == status["generation"] + 1
    await eventually(lambda: _swapped(service, generation), timeout=60, what="the rebuild")
    after = await get(service, "/board/requirements", limit=500)
    assert _comparable(after) == _comparable(before)
    trail = await get(service, f"/audit/{s.shipment}", role="planner")
    assert len(trail["events"]) == 4


async def _swapped(service: Projection, generation: int) -> bool:
    status = (await service.client.get("/admin/status", headers=auth("observer"))).json()
    assert status["rebuild"]["state"] != "failed", status["rebuild"]
    return bool(status["generation"] == generation and status["rebuild"]["state"] == "swapped")


def _comparable(board: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in r.items() if k != "updated_at"} for r in board["items"]),
        key=lambda r: r["requirement_id"],
    )


async def test_status_shows_lag_per_partition(service: Projection) -> None:
    status = await get(service, "/admin/status")
    assert status["running"] and status["events_applied"] > 0
    assert all({"topic", "partition", "lag", "next_offset"} <= set(p) for p in status["partitions"])
    assert status["last_event_time"]


_ = httpx  # the client type of Projection


async def test_sqlite_local_runs_keep_the_same_board(
    kafka: str, topics: Topics, tmp_path: Path
) -> None:
    """`make run` defaults to SQLite: the same read models, one file per generation."""
    s = Scenario()
    requests, allocations = s.requests(), s.allocations()
    await produce(topics.requests, requests)
    await produce(topics.allocations, allocations)
    async with projection_service(topics, f"sqlite+aiosqlite:///{tmp_path}/aidline.db") as svc:
        r = await row(svc, s.requirement, allocations[-1])
        await eventually(lambda: _status_is(svc, s.requirement, "covered"), what="coverage")
        r = await get(svc, f"/board/requirements/{s.requirement}")
        assert (r["requested"], r["allocated"], r["status"]) == (100, 100, "covered")
        ledger = await get(svc, f"/donors/{s.donor}/ledger")
        assert ledger["totals"]["confirmed_quantity"] >= 200
        started = await svc.client.post("/admin/rebuild", headers=auth("admin"))
        assert started.status_code == 202
        await eventually(lambda: _swapped(svc, 2), timeout=60, what="the rebuild")
        assert (await get(svc, f"/board/requirements/{s.requirement}"))["allocated"] == 100


async def test_the_cli_tails_the_stream_and_rebuilds(service: Projection, topics: Topics) -> None:
    s = Scenario()
    aidline = str(Path(sys.executable).with_name("aidline"))
    tail = await asyncio.create_subprocess_exec(
        aidline, "tail", "--projection-url", service.url, "--subject", s.requirement,
        "--count", "1",
        stdout=asyncio.subprocess.PIPE, env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    requests = s.requests()
    try:
        assert tail.stdout is not None
        first = await asyncio.wait_for(tail.stdout.readline(), 30)
        assert b"watching" in first
        await produce(topics.requests, requests[:1])
        out, _ = await asyncio.wait_for(tail.communicate(), 30)
    finally:
        if tail.returncode is None:
            tail.kill()
    assert tail.returncode == 0
    assert "requirement.submitted" in out.decode() and s.requirement in out.decode()
    rebuild = await asyncio.create_subprocess_exec(
        aidline, "rebuild", "--projection-url", service.url, stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(rebuild.communicate(), 90)
    assert rebuild.returncode == 0, out.decode()
    assert "is live" in out.decode()
    await row(service, s.requirement, requests[0])


async def test_the_cli_speaks_json_lines_and_json(service: Projection, topics: Topics) -> None:
    """For scripts: `tail --json` one JSON line per event and nothing else on stdout, `rebuild
    --json` one document; the old `--url` spelling still works, with a warning."""
    s = Scenario()
    aidline = str(Path(sys.executable).with_name("aidline"))
    tail = await asyncio.create_subprocess_exec(
        aidline, "tail", "--url", service.url, "--subject", s.requirement, "--count", "2",
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    requests = s.requests()
    try:
        assert tail.stderr is not None
        warning = await asyncio.wait_for(tail.stderr.readline(), 30)
        assert b"--url is deprecated; use --projection-url" in warning
        assert b"watching" in await asyncio.wait_for(tail.stderr.readline(), 30)
        await produce(topics.requests, requests[:2])
        out, _ = await asyncio.wait_for(tail.communicate(), 30)
    finally:
        if tail.returncode is None:
            tail.kill()
    assert tail.returncode == 0
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["subject"] for r in records] == [s.requirement] * 2
    assert records[0]["type"] == "requirement.submitted" and "data" in records[0]
    rebuild = await asyncio.create_subprocess_exec(
        aidline, "rebuild", "--projection-url", service.url, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(rebuild.communicate(), 90)
    assert rebuild.returncode == 0, err.decode()
    document = json.loads(out)
    assert document["state"] == "swapped" and document["generation"] >= 2, document
    assert "is live" in err.decode()
