"""No read surface shows a viewer what the visibility table keeps from it.

One scenario (module-scoped) produces every event type through the real delivery service and
the real topics: an enhanced-EUM shipment held at inspection, delayed, handed over with a serial
discrepancy and received; another nation's shipment at another hub, delayed and partly lost; one
cancelled before dispatch and one whose cancellation is refused; and every request and
allocation event. The projection (a real process, from the topics' ends) projects it all.

The cases are generated from `shared.auth.visibility`: one viewer per role (and per hub and
nation for the scoped ones) x every read surface of `SURFACES` these two services answer. Each
answer's bytes (JSON, CSV, stream frames, `aidline tail` lines) must hold no value the table
keeps from the viewer — another nation's or hub's shipment ids, carrier references, serials,
reasons, notes, people's names — and a record asked for by id that the table refuses is 403/404,
never a redacted 200.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from rich.console import Console

from shared.auth import DEV_SECRET, Role, mint_token
from shared.auth.visibility import (
    Resource,
    Surface,
)
from shared.cli.tail import line
from shared.contracts import REGISTRIES
from shared.contracts import allocations as al_registry
from shared.contracts import requests as rq_registry
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationCancelled,
    AllocationProposed,
    AllocationRejected,
    ShortfallRecorded,
)
from shared.contracts.requests import (
    CatalogueItemAdded,
    DecisionRecorded,
    Endorsement,
    PledgeAnnounced,
    PledgeConfirmed,
    PledgeReduced,
    PledgeWithdrawn,
    RequirementAmended,
    RequirementCancelled,
    RequirementDeliveryRecorded,
    RequirementEndorsed,
    RequirementFulfilled,
    RequirementSubmitted,
)
from shared.contracts.topics import ALLOCATIONS, REQUESTS
from shared.domain import DomainEvent, EventRegistry, StoredEvent
from tests.infra import eventually, produce
from tests.integration.delivery.conftest import Delivery, serve, stored
from tests.integration.inprocess import running
from tests.projection import Projection, projection_service
from tests.visibility import (
    HUBS,
    NATIONS,
    VIEWERS,
    Call,
    Place,
    Secrets,
    Viewer,
    cases,
    get,
    leaks,
)

RUN = uuid.uuid4().hex[:8]
SERVICES_HERE = ("delivery", "projection", "every service", "cli")


# -- the scenario ----------------------------------------------------------------------------------


@dataclass
class Shipment:
    key: str
    donor: str
    hub: str
    item_code: str
    quantity: int
    allocation_id: str = ""
    pledge_id: str = ""
    requirement_id: str = ""

    def __post_init__(self) -> None:
        self.allocation_id = f"AL-{RUN}-{self.key}"
        self.pledge_id = f"PLG-{RUN}-{self.key}"
        self.requirement_id = f"REQ-{RUN}-{self.key}"

    @property
    def id(self) -> str:
        return f"SHP-{self.allocation_id}"


@dataclass
class World:
    delivery: Delivery
    projection: Projection
    shipments: list[Shipment]
    streams: list[str]  # every stream of the scenario
    secrets: Secrets
    first_event: str  # the id of an event before the scenario (to resume the stream from)
    live: dict[str, list[str]]  # viewer -> the frames of the live stream, as sent


def _token(
    role: Role, sub: str, *, nation: str | None = None, hub: str | None = None
) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint_token(DEV_SECRET, sub, [role], nation=nation, hub=hub)}"
    }


PLANNER = _token(Role.PLANNER, f"planner-{RUN}")


def _stored(
    registry: EventRegistry, stream: str, version: int, event: DomainEvent, actor: str
) -> StoredEvent:
    return stored(registry, stream, version, event, actor, correlation_id=f"c-{RUN}")


class Scenario:
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.secrets = Secrets()
        self.streams: list[str] = []
        self.a = Shipment("A", "PL", "PL-RZE", "AD-PATRIOT-PAC3", 3)  # enhanced EUM
        self.b = Shipment("B", "DE", "RO-SUC", "AD-PATRIOT-GEMT", 2)  # enhanced EUM
        self.c = Shipment("C", "DE", "PL-RZE", "ART-155-HE", 5)
        self.d = Shipment("D", "PL", "RO-SUC", "ART-155-HE", 5)
        self.shipments = [self.a, self.b, self.c, self.d]

    def planning_secret(self, value: str, *fields: str) -> str:
        return self.secrets.add(value, Place(Resource.PLANNING_EVENT, frozenset(fields)))

    def shipment_secret(self, s: Shipment, value: str, *fields: str) -> str:
        for resource in (Resource.SHIPMENT, Resource.SHIPMENT_EVENT):
            self.secrets.add(value, Place(resource, frozenset(fields), s.hub, s.donor))
        return value

    async def requests_and_allocations(self) -> None:
        events: list[StoredEvent] = []
        people = self.planning_secret(f"rq-{RUN}", "actor")
        for s in self.shipments:
            self.streams += [s.requirement_id, s.pledge_id, s.allocation_id, s.id]
            self.shipment_secret(s, s.id, "shipment_id", "id", "subject", "stream_id")
            destination = '=HYPERLINK("http://x")' if s is self.a else "Lviv"
            submitted = RequirementSubmitted(
                requirement_id=s.requirement_id,
                item_code=s.item_code,
                quantity=s.quantity,
                unit="units",
                priority=1,
                needed_by=date(2099, 1, 1),
                destination=destination,
                justification=self.planning_secret(f"JUST-{RUN}-{s.key}", "justification"),
            )
            pledge = PledgeAnnounced(
                pledge_id=s.pledge_id,
                donor=s.donor,
                item_code=s.item_code,
                quantity=s.quantity,
                unit="units",
                source="stock",
                available_from=date(2026, 1, 1),
            )
            events += [
                _stored(rq_registry, s.requirement_id, 1, submitted, people),
                _stored(rq_registry, s.pledge_id, 1, pledge, f"donor@{s.donor}"),
            ]
        a, b, c = self.a, self.b, self.c
        extra_pledge, decision = f"PLG-{RUN}-E", f"DEC-{RUN}"
        self.streams += [extra_pledge, decision, f"catalogue-X-{RUN}"]
        events += [
            _stored(
                rq_registry,
                a.requirement_id,
                2,
                RequirementEndorsed(priority=1, decision_id=decision),
                "forum",
            ),
            _stored(rq_registry, a.requirement_id, 3, RequirementAmended(quantity=3), people),
            # B's requirement too: the decision's execution then has a delayed, lost shipment.
            _stored(
                rq_registry,
                b.requirement_id,
                2,
                RequirementEndorsed(priority=1, decision_id=decision),
                "forum",
            ),
            _stored(
                rq_registry,
                c.requirement_id,
                2,
                RequirementCancelled(reason=self.planning_secret(f"RQC-{RUN}", "reason")),
                people,
            ),
            _stored(
                rq_registry,
                extra_pledge,
                1,
                PledgeAnnounced(
                    pledge_id=extra_pledge,
                    donor="DE",
                    item_code="ART-155-HE",
                    quantity=9,
                    unit="units",
                    source="stock",
                    available_from=date(2026, 1, 1),
                ),
                "donor@DE",
            ),
            _stored(rq_registry, extra_pledge, 2, PledgeConfirmed(decision_id=decision), "forum"),
            _stored(rq_registry, extra_pledge, 3, PledgeReduced(quantity=5), "donor@DE"),
            _stored(
                rq_registry,
                extra_pledge,
                4,
                PledgeWithdrawn(reason=self.planning_secret(f"PWR-{RUN}", "reason")),
                "donor@DE",
            ),
            _stored(
                rq_registry,
                decision,
                1,
                DecisionRecorded(
                    decision_id=decision,
                    meeting_date=date(2026, 1, 1),
                    reference="UDCG",
                    endorsed=[
                        Endorsement(requirement_id=a.requirement_id, priority=1),
                        Endorsement(requirement_id=b.requirement_id, priority=1),
                    ],
                    confirmed=[extra_pledge],
                ),
                "forum",
            ),
            _stored(
                rq_registry,
                f"catalogue-X-{RUN}",
                1,
                CatalogueItemAdded(
                    item_code=f"X-{RUN}",
                    name="x",
                    capability="other",
                    unit="units",
                    eum_class="none",
                ),
                "admin",
            ),
        ]
        await produce(REQUESTS, events)
        allocations: list[StoredEvent] = []
        approver = self.planning_secret(f"apv-{RUN}", "approved_by")
        for s in self.shipments:
            proposed = AllocationProposed(
                allocation_id=s.allocation_id,
                requirement_id=s.requirement_id,
                pledge_id=s.pledge_id,
                item_code=s.item_code,
                quantity=s.quantity,
                hub=s.hub,
                handover_by=date(2099, 1, 1),
                rationale=self.planning_secret(f"RAT-{RUN}-{s.key}", "rationale"),
            )
            allocations += [
                _stored(al_registry, s.allocation_id, 1, proposed, "system"),
                _stored(
                    al_registry,
                    s.allocation_id,
                    2,
                    AllocationApproved(approved_by=approver),
                    approver,
                ),
            ]
        rejected = f"AL-{RUN}-E"
        self.streams += [rejected, f"shortfall-{c.requirement_id}"]
        allocations += [
            _stored(
                al_registry,
                rejected,
                1,
                AllocationProposed(
                    allocation_id=rejected,
                    requirement_id=c.requirement_id,
                    pledge_id=extra_pledge,
                    item_code="ART-155-HE",
                    quantity=1,
                    hub="PL-RZE",
                    handover_by=date(2099, 1, 1),
                    rationale="second",
                ),
                "system",
            ),
            _stored(
                al_registry,
                rejected,
                2,
                AllocationRejected(reason=self.planning_secret(f"ARJ-{RUN}", "reason")),
                approver,
            ),
            _stored(
                al_registry,
                f"shortfall-{c.requirement_id}",
                1,
                ShortfallRecorded(
                    requirement_id=c.requirement_id,
                    open_quantity=1,
                    reason=self.planning_secret(f"SHF-{RUN}", "reason"),
                ),
                "system",
            ),
        ]
        await produce(ALLOCATIONS, allocations)
        for s in self.shipments:
            await self.delivery.wait_for(s.id)

    async def milestones(self) -> None:
        a, b, c, d = self.a, self.b, self.c, self.d
        serials_a = [
            self.shipment_secret(a, f"SN-{RUN}-A{i}", "serials", "handover_serials", "missing")
            for i in range(3)
        ]
        unexpected = self.shipment_secret(
            a, f"SN-{RUN}-AX", "serials", "handover_serials", "unexpected"
        )
        serials_b = [
            self.shipment_secret(b, f"SN-{RUN}-B{i}", "serials", "lost_serials") for i in range(2)
        ]
        eta = (datetime.now(UTC).date() + timedelta(days=9)).isoformat()
        donor_a = _token(Role.DONOR, self.people(a, "dn"), nation=a.donor)
        op_a = _token(Role.HUB, self.people(a, "op"), hub=a.hub)
        op_b = _token(Role.HUB, self.people(b, "op"), hub=b.hub)
        planner_b = _token(Role.PLANNER, self.people(b, "pl"))
        planner_d = _token(Role.PLANNER, self.people(d, "pl"))
        recipient_a = _token(Role.RECIPIENT, self.people(a, "rc"))
        steps: list[tuple[Shipment, str, dict[str, Any] | None, dict[str, str]]] = [
            (
                a,
                "dispatch",
                {"mode": "road", "carrier_ref": self.carrier(a), "serials": serials_a},
                donor_a,
            ),
            (a, "arrive", None, op_a),
            (
                a,
                "inspect",
                {"result": "held", "notes": self.reason(a, "NOTE", "notes", "inspection_notes")},
                op_a,
            ),
            (a, "inspect", {"result": "passed", "notes": ""}, op_a),
            (
                a,
                "delay",
                {"reason": self.reason(a, "DELAY", "reason", "delay_reason"), "new_eta": eta},
                op_a,
            ),
            (a, "depart", None, op_a),
            (
                a,
                "handover",
                {
                    "received_good": 3,
                    "damaged": 0,
                    "short": 0,
                    "serials": [*serials_a[:2], unexpected],
                },
                op_a,
            ),
            (a, "receive", None, recipient_a),
            (
                b,
                "dispatch",
                {"mode": "rail", "carrier_ref": self.carrier(b), "serials": serials_b},
                planner_b,
            ),
            (b, "arrive", None, op_b),
            (
                b,
                "delay",
                {"reason": self.reason(b, "DELAY", "reason", "delay_reason"), "new_eta": eta},
                op_b,
            ),
            (
                b,
                "report-loss",
                {
                    "quantity": 1,
                    "reason": self.reason(b, "LOSS", "reason"),
                    "serials": serials_b[:1],
                },
                op_b,
            ),
            (d, "dispatch", {"mode": "air", "carrier_ref": self.carrier(d)}, planner_d),
        ]
        for s, step, body, headers in steps:
            response = await self.delivery.client.post(
                f"/shipments/{s.id}/{step}", json=body, headers=headers
            )
            assert response.status_code < 300, (s.key, step, response.text)
        cancellations = [
            _stored(
                al_registry,
                s.allocation_id,
                3,
                AllocationCancelled(reason=self.cancel_reason(s)),
                "system",
            )
            for s in (c, d)
        ]
        await produce(ALLOCATIONS, cancellations)
        await self.delivery.wait_for(c.id, "cancelled")
        await self.delivery.published(d.id, "shipment.cancellation_refused")
        await self.delivery.published(a.id, "shipment.eum_discrepancy", "shipment.received")
        # `requirement.delivery_recorded` names the shipment (the request service's answer).
        closing = [
            _stored(
                rq_registry,
                a.requirement_id,
                4,
                RequirementDeliveryRecorded(shipment_id=a.id, quantity=3),
                "system",
            ),
            _stored(rq_registry, a.requirement_id, 5, RequirementFulfilled(), "system"),
            _stored(
                rq_registry,
                b.requirement_id,
                3,
                RequirementDeliveryRecorded(shipment_id=b.id, quantity=1),
                "system",
            ),
        ]
        await produce(REQUESTS, closing)

    def people(self, s: Shipment, who: str) -> str:
        """A person acting on shipment `s` only (their name is the shipment's secret)."""
        sub = f"{who}-{RUN}-{s.key}"
        scope = s.hub if who == "op" else s.donor if who == "dn" else None
        self.shipment_secret(s, f"{sub}@{scope}" if scope else sub, "actor")
        return sub

    def carrier(self, s: Shipment) -> str:
        return self.shipment_secret(s, f"CR-{RUN}-{s.key}", "carrier_ref")

    def reason(self, s: Shipment, kind: str, *fields: str) -> str:
        return self.shipment_secret(s, f"{kind}-{RUN}-{s.key}", *fields)

    def cancel_reason(self, s: Shipment) -> str:
        value = self.shipment_secret(s, f"CANCEL-{RUN}-{s.key}", "reason", "cancel_reason")
        return self.secrets.add(value, Place(Resource.PLANNING_EVENT, frozenset({"reason"})))


async def _probe(projection: Projection) -> str:
    """An event the projection has applied: produced until one arrives (it reads from the
    topics' ends, so one produced before its consumer had its partitions is never seen)."""
    seen: list[str] = []

    async def applied() -> bool:
        probe = _stored(rq_registry, f"probe-{RUN}", 1, RequirementCancelled(reason="probe"), "x")
        await produce(REQUESTS, [probe])
        response = await projection.client.get(
            f"/audit/{probe.stream_id}",
            params={"after_event": str(probe.event_id)},
            headers=PLANNER,
        )
        if response.status_code == 200:
            seen.append(str(probe.event_id))
        return bool(seen)

    await eventually(applied, timeout=60, what="the projection to read the topics")
    return seen[0]


async def _frames(
    projection: Projection, headers: dict[str, str], until: Callable[[str], bool], **params: str
) -> list[str]:
    """The stream's `data:` frames until one of them, or the ": live" comment, satisfies
    `until`."""
    frames: list[str] = []
    async with projection.client.stream(
        "GET",
        "/events/stream",
        params=params,
        headers=headers,
        timeout=httpx.Timeout(10, read=None),
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for raw in response.aiter_lines():
            if raw.startswith("data:"):
                frames.append(raw[5:].strip())
            if until(raw):
                return frames
    return frames


@pytest.fixture(scope="module")
async def world(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with (
        serve("postgres", kafka, tmp_path_factory) as delivery,
        projection_service(
            None, CONSUMER_START_AT="latest", READ_YOUR_WRITES_TIMEOUT="2"
        ) as projection,
    ):
        first = await _probe(projection)
        scenario = Scenario(delivery)
        marker = f"REQ-{RUN}-MARK"
        # The live stream, per viewer, from before the scenario until its last event.
        live = {
            v.name: asyncio.create_task(_frames(projection, v.headers, lambda raw: marker in raw))
            for v in VIEWERS
        }
        await scenario.requests_and_allocations()
        await scenario.milestones()
        await _all_projected(projection, scenario)
        await produce(
            REQUESTS, [_stored(rq_registry, marker, 1, RequirementCancelled(reason="end"), "x")]
        )
        frames = {name: await asyncio.wait_for(task, 60) for name, task in live.items()}
        yield World(
            delivery,
            projection,
            scenario.shipments,
            scenario.streams,
            scenario.secrets,
            first,
            frames,
        )


async def _all_projected(projection: Projection, scenario: Scenario) -> None:
    async def there() -> bool:
        for s in scenario.shipments:
            response = await projection.client.get(f"/audit/{s.id}", headers=PLANNER)
            if response.status_code != 200:
                return False
            types = {e["event_type"] for e in response.json()["events"]}
            last = {
                "A": "shipment.received",
                "B": "shipment.lost",
                "C": "shipment.cancelled",
                "D": "shipment.cancellation_refused",
            }[s.key]
            if last not in types:
                return False
        response = await projection.client.get(
            f"/audit/{scenario.b.requirement_id}", headers=PLANNER
        )
        return response.status_code == 200 and len(response.json()["events"]) == 3

    await eventually(there, timeout=60, what="the projection to apply the scenario")


# -- the surfaces, as calls on this scenario ------------------------------------------------------


def _calls(surface: Surface, w: World) -> list[Call]:
    d, p = w.delivery.client, w.projection.client
    shipment_place = {
        s.id: Place(Resource.SHIPMENT, frozenset(), s.hub, s.donor) for s in w.shipments
    }

    def per_shipment(client: httpx.AsyncClient, template: str) -> list[Call]:
        return [
            Call(s.id, get(client, template.format(s.id)), shipment_place[s.id])
            for s in w.shipments
        ]

    async def stream_live(viewer: Viewer) -> tuple[int, bytes]:
        return 200, "\n".join(w.live[viewer.name]).encode()

    async def stream_resumed(viewer: Viewer) -> tuple[int, bytes]:
        frames = await asyncio.wait_for(
            _frames(
                w.projection,
                viewer.headers,
                lambda raw: raw.startswith(": live"),
                since=w.first_event,
            ),
            30,
        )
        return 200, "\n".join(frames).encode()

    async def tail(viewer: Viewer) -> tuple[int, bytes]:
        console = Console(record=True, width=100_000, file=io.StringIO())
        for frame in w.live[viewer.name]:
            console.print(line(json.loads(frame), show_data=True))
        return 200, console.export_text().encode()

    # As of today: the same state from the history tables, through the same visibility.
    today = datetime.now(UTC).date().isoformat()
    month_ago = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    by_path: dict[tuple[str, str], list[Call]] = {
        ("delivery", "GET /shipments"): [Call("list", get(d, "/shipments", limit="500"))],
        ("delivery", "GET /shipments/{shipment_id}"): per_shipment(d, "/shipments/{}"),
        ("delivery", "GET /shipments/summary"): [Call("summary", get(d, "/shipments/summary"))],
        ("projection", "GET /board/requirements"): [
            Call("json", get(p, "/board/requirements", limit="500")),
            Call("csv", get(p, "/board/requirements", limit="500", format="csv")),
            Call("as of", get(p, "/board/requirements", limit="500", as_of=today)),
            Call("csv as of", get(p, "/board/requirements", format="csv", as_of=today)),
        ],
        ("projection", "GET /changes"): [
            Call("json", get(p, "/changes", limit="500", **{"from": month_ago})),
            Call("csv", get(p, "/changes.csv", limit="500", **{"from": month_ago})),
        ],
        ("projection", "GET /board/requirements/{requirement_id}"): [
            *(
                Call(s.requirement_id, get(p, f"/board/requirements/{s.requirement_id}"))
                for s in w.shipments
            ),
            *(
                Call(
                    f"{s.requirement_id} as of",
                    get(p, f"/board/requirements/{s.requirement_id}", as_of=today),
                )
                for s in w.shipments
            ),
        ],
        ("projection", "GET /donors/{nation}/ledger"): [
            *(Call(n, get(p, f"/donors/{n}/ledger")) for n in NATIONS),
            *(Call(f"{n} as of", get(p, f"/donors/{n}/ledger", as_of=today)) for n in NATIONS),
        ],
        ("projection", "GET /capabilities/gaps"): [
            Call("gaps", get(p, "/capabilities/gaps")),
            Call("as of", get(p, "/capabilities/gaps", as_of=today)),
        ],
        ("projection", "GET /hubs"): [Call("hubs", get(p, "/hubs"))],
        ("projection", "GET /hubs/{hub}"): [Call(h, get(p, f"/hubs/{h}")) for h in HUBS],
        ("projection", "GET /decisions"): [
            Call("json", get(p, "/decisions", limit="500")),
            Call("csv", get(p, "/decisions", limit="500", format="csv")),
            Call("as of", get(p, "/decisions", limit="500", as_of=today)),
        ],
        ("projection", "GET /decisions/{decision_id}/execution"): [
            Call("json", get(p, f"/decisions/DEC-{RUN}/execution")),
            Call("csv", get(p, f"/decisions/DEC-{RUN}/execution", format="csv")),
            Call("as of", get(p, f"/decisions/DEC-{RUN}/execution", as_of=today)),
        ],
        ("projection", "GET /shipments/{shipment_id}/timeline"): per_shipment(
            p, "/shipments/{}/timeline"
        ),
        ("projection", "GET /audit/{stream_id}"): [
            Call(
                stream,
                get(p, f"/audit/{stream}"),
                shipment_place.get(stream)
                and Place(
                    Resource.SHIPMENT_EVENT,
                    frozenset(),
                    shipment_place[stream].hub,
                    shipment_place[stream].donor,
                ),
            )
            for stream in w.streams
        ],
        ("projection", "GET /events/stream"): [
            Call("live", stream_live),
            Call("resumed", stream_resumed),
        ],
        ("projection", "GET /admin/status"): [Call("status", get(p, "/admin/status"))],
        ("projection", "GET /"): [Call("page", get(p, "/"))],
        ("cli", "aidline tail"): [Call("tail", tail)],
        ("every service", "GET /admin/dead-letters"): [
            Call("delivery", get(d, "/admin/dead-letters")),
            Call("projection", get(p, "/admin/dead-letters")),
        ],
        ("every service", "GET /admin/dead-letters/{letter_id}"): [
            Call("delivery", get(d, f"/admin/dead-letters/{uuid.uuid4()}"), unknown=True),
            Call("projection", get(p, f"/admin/dead-letters/{uuid.uuid4()}"), unknown=True),
        ],
    }
    return by_path[(surface.service, surface.path)]


CASES = cases(*SERVICES_HERE)


@pytest.mark.parametrize(("viewer", "surface"), CASES)
async def test_no_surface_shows_what_the_table_keeps(
    world: World, viewer: Viewer, surface: Surface
) -> None:
    problems = await leaks(viewer, surface, _calls(surface, world), world.secrets)
    assert not problems, "\n".join(problems)


async def test_the_scenario_has_every_event_type(world: World) -> None:
    """Every event type of every topic is in the scenario (so every one was checked above), as
    the planner's audit of its streams shows."""
    seen: set[str] = set()
    for stream in world.streams:
        response = await world.projection.client.get(f"/audit/{stream}", headers=PLANNER)
        seen |= {e["event_type"] for e in response.json().get("events", [])}
    everything = {t for registry in REGISTRIES.values() for t in registry.types}
    assert everything - seen == set()


async def test_the_board_csv_neutralises_formulas(world: World) -> None:
    """The requirement's destination `=HYPERLINK("http://x")` is text in a spreadsheet."""
    response = await world.projection.client.get(
        "/board/requirements", params={"format": "csv", "limit": "500"}, headers=PLANNER
    )
    rows = {r["requirement_id"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert rows[world.shipments[0].requirement_id]["destination"] == '\'=HYPERLINK("http://x")'


async def test_admin_status_shows_exception_text_to_admins_only(kafka: str) -> None:
    async with running("projection") as app:
        app.state.runtime.rebuilder.progress.error = f"OperationalError at /srv/{RUN}"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for viewer in VIEWERS:
                response = await client.get("/admin/status", headers=viewer.headers)
                assert response.status_code == 200, response.text
                shown = RUN in response.text
                assert shown == (Role.ADMIN in viewer.principal.roles), viewer.name
