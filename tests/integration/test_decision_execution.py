"""A forum decision followed through allocation, shipment, handover and receipt, as the real
projection (Kafka; PostgreSQL, and SQLite as `make run` has it) answers `GET /decisions` and
`GET /decisions/{id}/execution`: quantities per step, days since the decision, what is stuck
and why, and who sees which shipment."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.auth import Principal, Role
from shared.auth.visibility import Resource, hidden_fields
from shared.domain import StoredEvent
from tests.infra import eventually
from tests.projection import Projection, auth, event, fed_projection, read

RUN = uuid.uuid4().hex[:6]
DECIDED = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
ETA = date(2099, 5, 1)
HUB = "PL-RZE"


def at(stored: StoredEvent, days: float, version: int = 1) -> StoredEvent:
    """`stored` as recorded `days` after the decision, in schema `version`."""
    return dataclasses.replace(
        stored, recorded_at=DECIDED + timedelta(days=days), schema_version=version
    )


def ids(prefix: str) -> str:
    return f"{prefix}-{RUN}"


DEC, R1, R2, P1 = ids("DEC"), ids("R1"), ids("R2"), ids("P1")
A1, A2 = ids("A1"), ids("A2")
S1, S2, S3, S4 = ids("S1"), ids("S2"), ids("S3"), ids("S4")


def _requests() -> list[StoredEvent]:
    def submitted(rid: str, quantity: int) -> StoredEvent:
        data = {
            "requirement_id": rid, "item_code": "ART-155-HE", "quantity": quantity,
            "unit": "rounds", "priority": 1, "needed_by": "2099-12-31", "destination": "Lviv",
            "justification": "-",
        }  # fmt: skip
        return at(event(rid, 1, "requirement.submitted", data), -3)

    pledge = {
        "pledge_id": P1, "donor": "DE", "item_code": "ART-155-HE", "quantity": 100,
        "unit": "rounds", "source": "stock", "available_from": "2026-01-01",
    }  # fmt: skip
    decision = {
        "decision_id": DEC, "meeting_date": DECIDED.date().isoformat(),
        "reference": '=HYPERLINK("http://x")',
        "endorsed": [{"requirement_id": R1, "priority": 1}, {"requirement_id": R2, "priority": 1}],
        "confirmed": [P1],
    }  # fmt: skip
    return [
        submitted(R1, 100),
        submitted(R2, 40),
        at(event(P1, 1, "pledge.announced", pledge), -2),
        at(event(R1, 2, "requirement.endorsed", {"priority": 1, "decision_id": DEC}), 0),
        at(event(R2, 2, "requirement.endorsed", {"priority": 1, "decision_id": DEC}), 0),
        at(event(P1, 2, "pledge.confirmed", {"decision_id": DEC}), 0),
        at(event(DEC, 1, "decision.recorded", decision), 0),
    ]


def _allocations() -> list[StoredEvent]:
    def proposed(aid: str, quantity: int, lineage: bool) -> StoredEvent:
        data: dict[str, Any] = {
            "allocation_id": aid, "requirement_id": R1, "pledge_id": P1,
            "item_code": "ART-155-HE", "quantity": quantity, "hub": HUB,
            "handover_by": "2099-01-01", "rationale": "-",
        }  # fmt: skip
        if lineage:  # v2; A2 is a v1 event, stored before the lineage existed
            data |= {"endorsed_by_decision": DEC, "confirmed_by_decision": DEC}
        return at(event(aid, 1, "allocation.proposed", data), 2, version=2 if lineage else 1)

    shortfall = {"requirement_id": R2, "open_quantity": 40, "reason": "no pledge of ART-155-HE"}
    return [
        proposed(A1, 60, lineage=True),
        at(event(A1, 2, "allocation.approved", {"approved_by": "planner-1"}), 3),
        proposed(A2, 40, lineage=False),
        at(event(A2, 2, "allocation.approved", {"approved_by": "planner-1"}), 3),
        at(event(ids("shortfall"), 1, "shortfall.recorded", shortfall), 2),
    ]


def _deliveries() -> list[StoredEvent]:
    Step = tuple[float, str, dict[str, Any]]

    def shipment(sid: str, aid: str, quantity: int, steps: list[Step]) -> list[StoredEvent]:
        planned: dict[str, Any] = {
            "shipment_id": sid, "allocation_id": aid, "requirement_id": R1, "pledge_id": P1,
            "donor": "DE", "item_code": "ART-155-HE", "quantity": quantity, "hub": HUB,
            "handover_point": "Korczowa",
        }  # fmt: skip
        v2 = aid == A1
        if v2:
            planned |= {"endorsed_by_decision": DEC, "confirmed_by_decision": DEC}
        out = [at(event(sid, 1, "shipment.planned", planned), 4, version=2 if v2 else 1)]
        for version, (days, kind, data) in enumerate(steps, start=2):
            out.append(at(event(sid, version, kind, data), days))
        return out

    dispatched = ("shipment.dispatched", {"mode": "road", "carrier_ref": "T-1", "serials": []})
    arrived = ("shipment.arrived_at_hub", {"hub": HUB})
    return [
        # handed over and received
        *shipment(S1, A1, 30, [
            (5, *dispatched), (6, *arrived),
            (6.5, "shipment.inspected", {"result": "passed", "notes": ""}),
            (7, "shipment.departed_hub", {}),
            (8, "shipment.handed_over",
             {"received_good": 30, "damaged": 0, "short": 0, "serials": []}),
            (9, "shipment.received", {}),
        ]),
        # delayed on its way
        *shipment(S2, A1, 20, [
            (5, *dispatched),
            (6, "shipment.delayed", {"reason": "border queue", "new_eta": ETA.isoformat()}),
        ]),
        # lost, all of it
        *shipment(S4, A1, 10, [
            (5.5, *dispatched),
            (7, "shipment.lost", {"quantity": 10, "reason": "truck fire", "serials": []}),
        ]),
        # v1 (no lineage: its requirement's decision), held at inspection
        *shipment(S3, A2, 40, [
            (5, *dispatched), (6, *arrived),
            (6.5, "shipment.inspected", {"result": "held", "notes": "papers missing"}),
        ]),
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
async def service(
    kafka: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Projection]:
    # SQLite: `make run`'s default.
    async with fed_projection(
        request.param, tmp_path_factory.mktemp("decisions"),
        requests=_requests(), allocations=_allocations(), deliveries=_deliveries(),
    ) as svc:  # fmt: skip
        yield svc


async def get(service: Projection, path: str, role: str = "observer", **params: Any) -> Any:
    return await read(service, path, role, **params)


async def test_the_decision_followed_to_the_border(service: Projection) -> None:
    answer = await get(service, f"/decisions/{DEC}/execution", role="planner")
    assert (answer["requirements_endorsed"], answer["pledges_confirmed"]) == (2, 1)
    lines = {x["subject"]: x for x in answer["lines"]}
    r1 = lines[R1]
    steps = ("confirmed", "allocated", "dispatched", "at_hub", "handed_over", "received", "lost")
    assert [r1[k] for k in steps] == [100, 100, 100, 70, 30, 30, 10]
    days = [r1[f"days_to_{k}"] for k in ("allocated", "dispatched", "at_hub", "handed_over",
                                         "received")]  # fmt: skip
    assert days == [2.0, 5.0, 6.0, 8.0, 9.0]
    assert r1["stuck"] == ["held", "delayed", "lost"]
    # The pledge side: the same allocations, found through the pledge's decision.
    assert [lines[P1][k] for k in ("confirmed", "allocated", "received")] == [100, 100, 30]
    r2 = lines[R2]
    assert (r2["stuck"], r2["open_shortfall"], r2["shortfall_reason"]) == (
        ["no_allocation"], 40, "no pledge of ART-155-HE",
    )  # fmt: skip
    assert answer["stuck"] == {
        "no_allocation": {"requirements": 1, "pledges": 0, "quantity": 40},
        "shortfall": {"requirements": 0, "quantity": 0},
        "held": {"shipments": 1, "quantity": 40},
        "delayed": {"shipments": 1, "quantity": 20},
        "lost": {"shipments": 1, "quantity": 10},
    }
    assert answer["requirements"]["share_handed_over"] == round(30 / 140, 4)
    shipments = {s["shipment_id"]: s for s in answer["shipments"]}
    assert sorted(shipments) == sorted([S1, S2, S3, S4])
    assert shipments[S3]["held"] and shipments[S3]["inspection_notes"] == "papers missing"
    s2 = shipments[S2]
    assert (s2["delayed"], s2["new_eta"], s2["delay_reason"]) == (True, ETA.isoformat(),
                                                                  "border queue")  # fmt: skip
    assert (shipments[S4]["status"], shipments[S4]["loss_reason"]) == ("lost", "truck fire")
    assert shipments[S1]["status"] == "received" and not shipments[S1]["delayed"]


@pytest.mark.parametrize(
    ("role", "scope", "sees_shipments", "sees_why"),
    [
        ("observer", {}, False, False),
        ("forum", {}, False, False),
        ("donor", {"nation": "DE"}, True, False),
        ("donor", {"nation": "PL"}, False, False),
        ("hub", {"hub": HUB}, True, True),
        ("hub", {"hub": "RO-SUC"}, False, False),
        ("recipient", {}, True, True),
    ],
)
async def test_figures_for_all_shipments_as_the_table_allows(
    service: Projection, role: str, scope: dict[str, str], sees_shipments: bool, sees_why: bool
) -> None:
    response = await service.client.get(f"/decisions/{DEC}/execution", headers=auth(role, **scope))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["stuck"]["held"] == {"shipments": 1, "quantity": 40}
    assert {x["subject"] for x in answer["lines"]} == {R1, R2, P1}
    # Why a requirement is short: as the table shows a planning record's reasons to the role.
    principal = Principal(
        "viewer", frozenset({Role(role)}), nation=scope.get("nation"), hub=scope.get("hub")
    )
    hidden = hidden_fields(principal, Resource.PLANNING) or frozenset()
    assert ("no pledge of ART-155-HE" in response.text) == ("shortfall_reason" not in hidden)
    assert bool(answer["shipments"]) == sees_shipments
    for shipment_level in (S1, "papers missing", "border queue", "truck fire", ETA.isoformat()):
        shown = shipment_level in response.text
        assert shown == (sees_why or (sees_shipments and shipment_level == S1)), shipment_level


async def test_the_decisions_list_with_progress_paged_and_as_csv(service: Projection) -> None:
    page = await get(service, "/decisions")
    [d] = page["items"]
    assert (page["total"], page["next_offset"]) == (1, None)
    assert d["decision_id"] == DEC and d["meeting_date"] == DECIDED.date().isoformat()
    figures = (
        "requirements_endorsed", "pledges_confirmed", "endorsed_quantity", "allocated_quantity",
        "handed_over_quantity", "shortfalls", "confirmed_quantity",
    )  # fmt: skip
    assert [d[k] for k in figures] == [2, 1, 140, 100, 30, 1, 100]
    assert d["share_handed_over"] == round(30 / 140, 4)
    assert (await get(service, "/decisions", offset="1"))["items"] == []
    rows = list(csv.DictReader(io.StringIO(await get(service, "/decisions", format="csv"))))
    assert rows[0]["reference"] == '\'=HYPERLINK("http://x")'
    lines = csv.DictReader(
        io.StringIO(await get(service, f"/decisions/{DEC}/execution", "planner", format="csv"))
    )
    by_id = {row["subject"]: row for row in lines}
    assert by_id[R1]["stuck"] == "held delayed lost" and by_id[R1]["at_hub"] == "70"
    assert by_id[R2]["shortfall_reason"] == "no pledge of ART-155-HE"


async def test_an_unknown_decision_is_404(service: Projection) -> None:
    response = await service.client.get("/decisions/DEC-none/execution", headers=auth("forum"))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_rebuild_gives_the_same_execution(service: Projection) -> None:
    before = await get(service, f"/decisions/{DEC}/execution", role="planner")
    key = {"Idempotency-Key": f"rebuild-{RUN}"}
    started = await service.client.post("/admin/rebuild", headers=auth("admin") | key)
    assert started.status_code == 202, started.text
    generation = started.json()["generation"]

    async def swapped() -> bool:
        status = await get(service, "/admin/status")
        assert status["rebuild"]["state"] != "failed", status["rebuild"]
        return bool(status["generation"] == generation and status["rebuild"]["state"] == "swapped")

    await eventually(swapped, timeout=90, what="the rebuild")
    assert await get(service, f"/decisions/{DEC}/execution", role="planner") == before
