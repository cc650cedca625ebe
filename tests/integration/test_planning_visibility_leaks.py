"""No read surface of the request and allocation services shows a viewer what the visibility
table keeps from it (the delivery and projection surfaces: `delivery/test_visibility_leaks.py`).

One scenario (module-scoped) runs through the real services over HTTP and the real topics: a
recipient states needs with their justification, two nations pledge, the forum decides, the
allocation service proposes, a planner approves one proposal and rejects another with a reason,
a nation withdraws a pledge with a reason, a need is cancelled with a reason, and a shipment's
receipt is recorded against a need. Every viewer (generated from the table) x every read surface
of the two services must show none of the people, reasons, justifications or shipment ids the
table keeps from it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.allocation.app import MIGRATIONS as ALLOCATION_MIGRATIONS
from services.allocation.app import build_app as allocation_app
from services.allocation.settings import AllocationSettings
from services.request.app import MIGRATIONS as REQUEST_MIGRATIONS
from services.request.app import build_app as request_app
from services.request.settings import RequestSettings
from shared.auth import DEV_SECRET, Role, mint_token
from shared.auth.visibility import SURFACES, Resource, Surface
from shared.contracts import deliveries
from shared.contracts.deliveries import ShipmentPlanned, ShipmentReceived
from shared.contracts.topics import DELIVERIES
from shared.db import Database
from shared.domain import DomainEvent, Metadata, StoredEvent
from shared.runtime import ServiceRuntime
from tests.infra import POSTGRES_URL, eventually, produce, start_at_the_end, stored_event
from tests.infra import unique_schema as new_schema
from tests.visibility import VIEWERS, Call, Place, Secrets, Viewer, cases, get, leaks

RUN = uuid.uuid4().hex[:8]
SERVICES_HERE = ("request", "allocation", "every service")
SOON = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
LATER = (datetime.now(UTC).date() + timedelta(days=200)).isoformat()


def _headers(role: Role, sub: str, *, nation: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_SECRET, sub, [role], nation=nation)}"}


PLANNER = _headers(Role.PLANNER, f"apv-{RUN}")


@dataclass
class World:
    request: httpx.AsyncClient
    allocation: httpx.AsyncClient
    secrets: Secrets
    requirements: list[str]
    pledges: list[str]
    decision: str
    allocations: list[str]


@asynccontextmanager
async def _serving(app: FastAPI, migrations: Path, schema: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service with its relay and consumers, reading only what comes after now."""
    runtime: ServiceRuntime = app.state.runtime
    await start_at_the_end(runtime, migrations)
    await runtime.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client
    finally:
        await runtime.stop()
        db = Database(POSTGRES_URL, schema)
        await db.drop_schema()
        await db.dispose()


def _settings(kafka: str, schema: str) -> dict[str, Any]:
    return {
        "database_url": POSTGRES_URL,
        "kafka_bootstrap_servers": kafka,
        "consumer_group_prefix": f"{schema}-",
        "environment": "test",
        "rate_limit_enabled": False,
    }


class Scenario:
    def __init__(self, request: httpx.AsyncClient, allocation: httpx.AsyncClient) -> None:
        self.request, self.allocation = request, allocation
        self.secrets = Secrets()

    def secret(self, value: str, *fields: str) -> str:
        for resource in (Resource.PLANNING, Resource.PLANNING_EVENT):
            self.secrets.add(value, Place(resource, frozenset(fields)))
        return value

    def person(self, role: Role, sub: str, *, nation: str | None = None) -> dict[str, str]:
        """A person's token; their name (as events record it) is a secret of people."""
        self.secret(f"{sub}@{nation}" if nation else sub, "actor", "approved_by")
        return _headers(role, sub, nation=nation)

    async def post(self, client: httpx.AsyncClient, path: str, body: Any, **headers: str) -> Any:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code < 300, (path, response.text)
        return response.json()

    async def run(self) -> World:
        recipient = self.person(Role.RECIPIENT, f"rc-{RUN}")
        pl = self.person(Role.DONOR, f"dn-{RUN}", nation="PL")
        de = self.person(Role.DONOR, f"dn-{RUN}", nation="DE")
        forum = self.person(Role.FORUM, f"fm-{RUN}")
        self.secret(f"apv-{RUN}", "actor", "approved_by")
        requirements = []
        for key, item, quantity in (
            ("1", "ART-155-HE", 100),
            ("2", "ART-155-HE", 50),
            ("3", "AD-PATRIOT-PAC3", 2),  # nothing pledged: a shortfall
            ("4", "ART-155-HE", 5),  # cancelled
        ):
            body = {
                "item_code": item,
                "quantity": quantity,
                "priority": 1,
                "needed_by": LATER,
                "destination": "Lviv",
                "justification": self.secret(f"JUST-{RUN}-{key}", "justification"),
            }
            stated = await self.post(self.request, "/requirements", body, **recipient)
            requirements.append(stated["id"])
        pledges = []
        for headers, donor, quantity in ((pl, "PL", 100), (pl, "PL", 50), (de, "DE", 30)):
            body = {
                "donor": donor,
                "item_code": "ART-155-HE",
                "quantity": quantity,
                "source": "stock",
                "available_from": SOON,
            }
            pledges.append((await self.post(self.request, "/pledges", body, **headers))["id"])
        decided = await self.post(
            self.request,
            "/decisions",
            {
                "meeting_date": datetime.now(UTC).date().isoformat(),
                "reference": f"UDCG-{RUN}",
                "endorse": [{"requirement_id": r} for r in requirements[:3]],
                "confirm": pledges,
            },
            **forum,
        )
        proposed = await self._proposals(requirements[:2])
        first, second = proposed[requirements[0]][0], proposed[requirements[1]][0]
        await self.post(self.allocation, f"/allocations/{first}/approve", None, **PLANNER)
        reject = {"reason": self.secret(f"ARJ-{RUN}", "reason")}
        await self.post(self.allocation, f"/allocations/{second}/reject", reject, **PLANNER)
        withdraw = {"reason": self.secret(f"PWR-{RUN}", "withdraw_reason", "reason")}
        await self.post(self.request, f"/pledges/{pledges[2]}/withdraw", withdraw, **de)
        cancel = {"reason": self.secret(f"RQC-{RUN}", "cancel_reason", "reason")}
        await self.post(
            self.request, f"/requirements/{requirements[3]}/cancel", cancel, **recipient
        )
        await self._received(requirements[0])
        allocations = await self._rationales()
        return World(
            self.request,
            self.allocation,
            self.secrets,
            requirements,
            pledges,
            decided["id"],
            allocations,
        )

    async def _proposals(self, requirements: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}

        async def proposed() -> bool:
            for r in requirements:
                response = await self.allocation.get(
                    "/allocations",
                    params={"requirement_id": r, "status": "proposed"},
                    headers=PLANNER,
                )
                found[r] = [a["allocation_id"] for a in response.json()["items"]]
            return all(found.values())

        await eventually(proposed, timeout=60, what="the allocation service to propose")
        return found

    async def _received(self, requirement_id: str) -> None:
        """A shipment received for the requirement (as the delivery service would say it)."""
        shipment = self.secret(f"SHP-{RUN}", "shipment_id", "deliveries")
        meta = Metadata(actor="system", correlation_id=f"c-{RUN}")

        def event(version: int, e: DomainEvent) -> StoredEvent:
            new = deliveries.encode(e, meta)
            return stored_event(shipment, version, new.data, event_type=new.event_type, meta=meta)

        planned = ShipmentPlanned(
            shipment_id=shipment,
            allocation_id=f"AL-{RUN}",
            requirement_id=requirement_id,
            pledge_id="PLG-X",
            donor="PL",
            item_code="ART-155-HE",
            quantity=10,
            hub="RO-SUC",
            handover_point="Siret",
        )
        await produce(DELIVERIES, [event(1, planned), event(2, ShipmentReceived())])

        async def recorded() -> bool:
            response = await self.request.get(f"/requirements/{requirement_id}", headers=PLANNER)
            return bool(response.json()["deliveries"])

        await eventually(recorded, timeout=60, what="the receipt recorded against the need")

    async def _rationales(self) -> list[str]:
        """Every allocation's id; their rationales are secrets of reasons."""
        response = await self.allocation.get("/allocations", params={"limit": 500}, headers=PLANNER)
        items = response.json()["items"]
        for a in items:
            self.secret(a["rationale"], "rationale")
        return [a["allocation_id"] for a in items]


@pytest.fixture(scope="module")
async def world(kafka: str) -> AsyncIterator[World]:
    rq_schema, al_schema = new_schema(), new_schema()
    async with (
        _serving(
            request_app(RequestSettings(**_settings(kafka, rq_schema)), schema=rq_schema),
            REQUEST_MIGRATIONS,
            rq_schema,
        ) as request,
        _serving(
            allocation_app(AllocationSettings(**_settings(kafka, al_schema)), schema=al_schema),
            ALLOCATION_MIGRATIONS,
            al_schema,
        ) as allocation,
    ):
        yield await Scenario(request, allocation).run()


def _calls(surface: Surface, w: World) -> list[Call]:
    rq, al = w.request, w.allocation

    def each(client: httpx.AsyncClient, template: str, ids: list[str]) -> list[Call]:
        return [Call(i, get(client, template.format(i))) for i in ids]

    by_path: dict[tuple[str, str], Callable[[], list[Call]]] = {
        ("request", "GET /requirements/{requirement_id}"): lambda: each(
            rq, "/requirements/{}", w.requirements
        ),
        ("request", "GET /pledges/{pledge_id}"): lambda: each(rq, "/pledges/{}", w.pledges),
        ("request", "GET /decisions/{decision_id}"): lambda: each(
            rq, "/decisions/{}", [w.decision]
        ),
        ("request", "GET /catalogue/items"): lambda: [Call("items", get(rq, "/catalogue/items"))],
        ("request", "GET /streams/{stream_id}/events"): lambda: each(
            rq, "/streams/{}/events", [*w.requirements, *w.pledges, w.decision]
        ),
        ("allocation", "GET /allocations"): lambda: [
            Call("list", get(al, "/allocations", limit="500"))
        ],
        ("allocation", "GET /allocations/{allocation_id}"): lambda: each(
            al, "/allocations/{}", w.allocations
        ),
        ("allocation", "GET /requirements/{requirement_id}/coverage"): lambda: each(
            al, "/requirements/{}/coverage", w.requirements
        ),
        ("every service", "GET /admin/dead-letters"): lambda: [
            Call("request", get(rq, "/admin/dead-letters")),
            Call("allocation", get(al, "/admin/dead-letters")),
        ],
        ("every service", "GET /admin/dead-letters/{letter_id}"): lambda: [
            Call(name, get(client, f"/admin/dead-letters/{uuid.uuid4()}"), unknown=True)
            for name, client in (("request", rq), ("allocation", al))
        ],
    }
    return by_path[(surface.service, surface.path)]()


CASES = cases(*SERVICES_HERE)


@pytest.mark.parametrize(("viewer", "surface"), CASES)
async def test_no_planning_surface_shows_what_the_table_keeps(
    world: World, viewer: Viewer, surface: Surface
) -> None:
    problems = await leaks(viewer, surface, _calls(surface, world), world.secrets)
    assert not problems, "\n".join(problems)


async def test_the_scenario_holds_every_kind_of_secret(world: World) -> None:
    """The planner sees each planted value somewhere (so each was there to leak)."""
    planner = next(v for v in VIEWERS if v.name == Role.PLANNER)
    bodies = b""
    for surface in SURFACES:
        if surface.service in ("request", "allocation"):
            for call in _calls(surface, world):
                sent = await call.send(planner)
                bodies += sent[1] if isinstance(sent, tuple) else sent
    assert [value for value in world.secrets.places if value.encode() not in bodies] == []
