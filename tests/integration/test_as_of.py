"""The read models as they stood at a date, and what changed between two, from the real
projection (Kafka; PostgreSQL and SQLite): `?as_of=` on the board, one requirement, the gaps,
a donor's ledger, the decisions and a decision's execution; `GET /changes` (JSON, CSV, paged,
per role). The events are those of test_decision_execution (a decision 20 days ago, then
allocations, shipments, a delay, a hold, a loss and a handover over the nine days after it);
the delivery events are produced first, the requests last, so the facts arrive in the reverse
of their business order."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.infra import eventually
from tests.integration.test_decision_execution import (
    A1,
    DEC,
    DECIDED,
    ETA,
    HUB,
    R1,
    R2,
    S1,
    S2,
    S3,
    S4,
    _allocations,
    _deliveries,
    _requests,
)
from tests.projection import Projection, auth, fed_projection, read

RUN = uuid.uuid4().hex[:6]


def day(offset: int) -> str:
    """The day `offset` days after the decision: every event up to that offset counts as of
    it, none from offset + 1 on."""
    return (DECIDED + timedelta(days=offset)).date().isoformat()


TODAY = datetime.now(UTC).date()
TOMORROW = "tomorrow"  # a parameter: the date is taken when the test runs


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
async def service(
    kafka: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Projection]:
    async with fed_projection(
        request.param, tmp_path_factory.mktemp("as_of"),
        requests=_requests(), allocations=_allocations(), deliveries=_deliveries(),
    ) as svc:  # fmt: skip
        yield svc


async def get(service: Projection, path: str, role: str = "planner", **params: Any) -> Any:
    return await read(service, path, role, **params)


async def board(service: Projection, **params: Any) -> dict[str, dict[str, Any]]:
    rows = (await get(service, "/board/requirements", **params))["items"]
    return {r["requirement_id"]: r for r in rows}


FIGURES = ("status", "requested", "pledged", "allocated", "in_transit", "delivered")


async def test_the_board_as_it_stood_on_each_day(service: Projection) -> None:
    assert await board(service, as_of=day(-4)) == {}
    expected = {
        -3: {R1: ("submitted", 100, 0, 0, 0, 0), R2: ("submitted", 40, 0, 0, 0, 0)},
        0: {R1: ("endorsed", 100, 0, 0, 0, 0), R2: ("endorsed", 40, 0, 0, 0, 0)},
        2: {R1: ("endorsed", 100, 100, 0, 0, 0), R2: ("endorsed", 40, 0, 0, 0, 0)},
        3: {R1: ("covered", 100, 100, 100, 0, 0), R2: ("endorsed", 40, 0, 0, 0, 0)},
        # S4's 10 lost on day 7: what moves is S1 30 + S2 20 + S3 40
        7: {R1: ("in_transit", 100, 100, 100, 90, 0), R2: ("endorsed", 40, 0, 0, 0, 0)},
        8: {R1: ("partially_delivered", 100, 100, 100, 60, 30), R2: ("endorsed", 40, 0, 0, 0, 0)},
    }
    for offset, rows in expected.items():
        seen = await board(service, as_of=day(offset))
        assert {k: tuple(v[f] for f in FIGURES) for k, v in seen.items()} == rows, offset
    shortfalls = {k: v["open_shortfall"] for k, v in (await board(service, as_of=day(2))).items()}
    assert shortfalls == {R1: None, R2: 40}
    assert (await board(service, as_of=day(1)))[R2]["open_shortfall"] is None


async def test_as_of_today_is_the_live_board(service: Projection) -> None:
    def figures(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: {f: v for f, v in r.items() if f != "updated_at"} for k, r in rows.items()}

    assert figures(await board(service, as_of=TODAY.isoformat())) == figures(await board(service))
    live = await get(service, "/board/requirements", format="csv")
    as_of = await get(service, "/board/requirements", format="csv", as_of=TODAY.isoformat())
    assert len(live.splitlines()) == len(as_of.splitlines()) == 3


async def test_one_requirement_with_its_allocations_and_shipments_as_of(
    service: Projection,
) -> None:
    found = await get(service, f"/board/requirements/{R1}", as_of=day(4))
    assert (found["status"], found["allocated"]) == ("covered", 100)
    assert sorted(s["shipment_id"] for s in found["shipments"]) == sorted([S1, S2, S3, S4])
    assert {s["status"] for s in found["shipments"]} == {"planned"}
    assert [a["status"] for a in found["allocations"]] == ["approved", "approved"]
    earlier = await get(service, f"/board/requirements/{R1}", as_of=day(2))
    assert [a["status"] for a in earlier["allocations"]] == ["proposed", "proposed"]
    assert earlier["shipments"] == []
    missing = await service.client.get(
        f"/board/requirements/{R1}", params={"as_of": day(-4)}, headers=auth("planner")
    )
    assert missing.status_code == 404


async def test_the_ledger_gaps_and_decisions_as_of(service: Projection) -> None:
    zero = await get(service, "/donors/DE/ledger", as_of=day(-4))
    assert zero["pledges"] == 0 and zero["totals"]["pledged_quantity"] == 0
    ledger = await get(service, "/donors/DE/ledger", as_of=day(-2))
    assert (ledger["totals"]["pledged_quantity"], ledger["totals"]["confirmed_quantity"]) == (
        100, 0,
    )  # fmt: skip
    ledger = await get(service, "/donors/DE/ledger", as_of=day(7))
    totals = ledger["totals"]
    assert (totals["confirmed_quantity"], totals["allocated_quantity"]) == (100, 100)
    assert (totals["shipped_quantity"], totals["handed_over_quantity"]) == (100, 0)
    assert (await get(service, "/donors/DE/ledger"))["totals"]["handed_over_quantity"] == 30

    gaps = await get(service, "/capabilities/gaps", as_of=day(3))
    [item] = [i for c in gaps["capabilities"] for i in c["items"]]
    assert (item["need"], item["pledged"], item["allocated"], item["delivered"]) == (
        140, 100, 100, 0,
    )  # fmt: skip
    assert (await get(service, "/capabilities/gaps", as_of=day(-4)))["capabilities"] == []

    assert (await get(service, "/decisions", as_of=day(-1)))["items"] == []
    [d] = (await get(service, "/decisions", as_of=day(3)))["items"]
    assert (d["decision_id"], d["allocated_quantity"], d["handed_over_quantity"]) == (DEC, 100, 0)
    early = await service.client.get(
        f"/decisions/{DEC}/execution", params={"as_of": day(-1)}, headers=auth("planner")
    )
    assert early.status_code == 404
    execution = await get(service, f"/decisions/{DEC}/execution", as_of=day(6))
    lines = {x["subject"]: x for x in execution["lines"]}
    assert (lines[R1]["dispatched"], lines[R1]["handed_over"], lines[R1]["lost"]) == (100, 0, 0)
    # the delay is known on day 6, the loss (day 7) not yet; the hold's notes (day 6.5) only
    # from the day they were written
    assert execution["stuck"]["delayed"] == {"shipments": 1, "quantity": 20}
    assert execution["stuck"]["lost"] == {"shipments": 0, "quantity": 0}
    later = await get(service, f"/decisions/{DEC}/execution", as_of=day(7))
    assert later["stuck"]["lost"] == {"shipments": 1, "quantity": 10}
    held = {s["shipment_id"]: s for s in later["shipments"]}[S3]
    assert held["inspection_notes"] == "papers missing"


@pytest.mark.parametrize(
    "path",
    [
        "/board/requirements",
        # Ids without the run's random part: pytest-xdist's workers must collect the same ids.
        pytest.param(f"/board/requirements/{R1}", id="/board/requirements/R1"),
        "/donors/DE/ledger",
        "/capabilities/gaps",
        "/decisions",
        pytest.param(f"/decisions/{DEC}/execution", id="/decisions/DEC/execution"),
    ],
)
@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "", TOMORROW])
async def test_a_bad_or_future_as_of_is_422_naming_it(
    service: Projection, path: str, value: str
) -> None:
    if value == TOMORROW:  # the day after the test runs, not after it was collected (midnight)
        value = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    response = await service.client.get(path, params={"as_of": value}, headers=auth("planner"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "as_of" in {e["field"].split(".")[-1] for e in response.json()["errors"]}


async def changes(service: Projection, role: str = "planner", **params: Any) -> dict[str, Any]:
    scope = params.pop("scope", {})
    response = await service.client.get("/changes", params=params, headers=auth(role, **scope))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_what_changed_between_two_meetings(service: Projection) -> None:
    before = await changes(service, **{"from": day(-10), "to": day(0)})
    kinds = sorted(line["kind"] for line in before["items"])
    assert kinds == sorted(
        ["need", "need", "pledge", "endorsement", "endorsement", "confirmation", "decision"]
    )
    assert before["total"] == 7 and before["next_offset"] is None
    need = next(x for x in before["items"] if x["kind"] == "need" and x["subject"] == R1)
    assert (need["item_code"], need["quantity"], need["date"]) == ("ART-155-HE", 100, day(-3))
    assert R1 in need["summary"] and "100" in need["summary"]
    since = await changes(service, **{"from": day(1), "to": TODAY.isoformat()})
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for line in since["items"]:
        by_kind.setdefault(line["kind"], []).append(line)
    assert sorted(by_kind) == ["allocation", "handover", "loss", "shortfall", "slip"]
    [handover] = by_kind["handover"]
    assert (handover["shipment_id"], handover["quantity"], handover["nation"]) == (S1, 30, "DE")
    [slip] = by_kind["slip"]
    assert (slip["shipment_id"], slip["new_eta"]) == (S2, ETA.isoformat())
    assert {a["subject"] for a in by_kind["allocation"]} >= {A1}
    [shortfall] = by_kind["shortfall"]
    assert (shortfall["requirement_id"], shortfall["quantity"]) == (R2, 40)
    dates = [line["at"] for line in since["items"]]
    assert dates == sorted(dates)
    # paged with the list envelope
    first = await changes(service, limit="2", **{"from": day(1), "to": TODAY.isoformat()})
    assert (len(first["items"]), first["next_offset"], first["total"]) == (2, 2, since["total"])
    assert first["items"] == since["items"][:2]


@pytest.mark.parametrize(
    ("role", "scope", "sees_shipments"),
    [
        ("observer", {}, False),
        ("forum", {}, False),
        ("donor", {"nation": "PL"}, False),
        ("donor", {"nation": "DE"}, True),
        ("hub", {"hub": HUB}, True),
        ("recipient", {}, True),
    ],
)
async def test_changes_per_role(
    service: Projection, role: str, scope: dict[str, str], sees_shipments: bool
) -> None:
    response = await service.client.get(
        "/changes", params={"from": day(-10)}, headers=auth(role, **scope)
    )
    assert response.status_code == 200, response.text
    lines = response.json()["items"]
    handovers = [x for x in lines if x["kind"] == "handover"]
    # every reader learns that 30 were handed over for R1 ...
    assert [(x["requirement_id"], x["quantity"]) for x in handovers] == [(R1, 30)]
    # ... only those who see the shipment learn which one, and where (S3, held, makes no line)
    assert S3 not in response.text
    for shipment_id in (S1, S2, S4):
        assert (shipment_id in response.text) == sees_shipments, shipment_id
    assert (ETA.isoformat() in response.text) == (sees_shipments and role != "donor")
    reason_shown = "no pledge of ART-155-HE" in response.text
    assert reason_shown == (role not in ("observer", "forum"))


async def test_changes_as_csv_three_ways(service: Projection) -> None:
    params = {"from": day(-10)}
    texts = [
        await get(service, "/changes", format="csv", **params),
        await get(service, "/changes.csv", **params),
    ]
    accepting = await service.client.get(
        "/changes", params=params, headers=auth("planner") | {"Accept": "text/csv"}
    )
    assert accepting.headers["content-type"].startswith("text/csv")
    texts.append(accepting.text)
    assert texts[0] == texts[1] == texts[2]
    rows = list(csv.DictReader(io.StringIO(texts[0])))
    [decision] = [r for r in rows if r["kind"] == "decision"]
    # the decision's reference is a formula in the test data: neutralised
    assert decision["note"].startswith("'=")
    assert {r["kind"] for r in rows} >= {"need", "handover", "slip", "loss"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({}, "from"),
        ({"from": day(2), "to": day(1)}, "from"),
        ({"from": day(0), "to": (TODAY + timedelta(days=2)).isoformat()}, "to"),
        ({"from": "1990-01-01", "to": day(0)}, "from"),
    ],
)
async def test_bad_change_ranges_are_422_naming_the_field(
    service: Projection, params: dict[str, str], field: str
) -> None:
    response = await service.client.get("/changes", params=params, headers=auth("planner"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"].split(".")[-1] for e in response.json()["errors"]}


async def test_a_rebuild_writes_the_same_history(service: Projection) -> None:
    span = {"from": day(-10), "to": TODAY.isoformat()}
    before = (await board(service, as_of=day(7)), await changes(service, **span))
    key = {"Idempotency-Key": f"rebuild-as-of-{RUN}"}
    started = await service.client.post("/admin/rebuild", headers=auth("admin") | key)
    assert started.status_code == 202, started.text
    generation = started.json()["generation"]

    async def swapped() -> bool:
        status = await get(service, "/admin/status")
        assert status["rebuild"]["state"] != "failed", status["rebuild"]
        return bool(status["generation"] == generation and status["rebuild"]["state"] == "swapped")

    await eventually(swapped, timeout=90, what="the rebuild")
    assert (await board(service, as_of=day(7)), await changes(service, **span)) == before
