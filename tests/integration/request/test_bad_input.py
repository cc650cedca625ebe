"""Bad input (issue: "Bad input to try"): the right status, problem+json with `errors` naming
the fields, and the store unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.request.conftest import (
    ADMIN,
    DONOR_PL,
    FORUM,
    RECIPIENT,
    Service,
    pledge_body,
    requirement_body,
)

YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
CSV = {"Content-Type": "text/csv"}
HEADER = "donor,item_code,quantity,source,available_from,value_eur,source_url\n"


async def refused(svc: Service, status: int, fields: set[str], send: Any) -> dict[str, Any]:
    """Send the request; check the status, the problem, the fields named, the store unchanged."""
    before = await svc.snapshot()
    answer: httpx.Response = await send()
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status and problem["title"]
    named = {e["field"] for e in problem.get("errors", [])}
    assert fields <= named, f"{fields} not all named in {named}"
    assert await svc.snapshot() == before
    return problem


def post(svc: Service, path: str, body: Any, headers: dict[str, str]) -> Any:
    return lambda: svc.post(path, body, headers)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quantity": 0}, "body.quantity"),
        ({"quantity": -5}, "body.quantity"),
        ({"quantity": 10_000_001}, "body.quantity"),
        ({"quantity": True}, "body.quantity"),
        ({"quantity": "5"}, "body.quantity"),
        ({"priority": 5}, "body.priority"),
        ({"needed_by": YESTERDAY}, "body.needed_by"),
        ({"needed_by": "2030-02-30"}, "body.needed_by"),
        ({"needed_by": "next week"}, "body.needed_by"),
        ({"destination": ""}, "body.destination"),
        ({"colour": "green"}, "body.colour"),
    ],
)
async def test_bad_requirement_fields(
    service: Service, overrides: dict[str, Any], field: str
) -> None:
    await refused(
        service,
        422,
        {field},
        post(service, "/requirements", requirement_body(**overrides), RECIPIENT),
    )


async def test_missing_fields_are_each_named(service: Service) -> None:
    body = requirement_body()
    del body["destination"], body["needed_by"]
    await refused(
        service,
        422,
        {"body.destination", "body.needed_by"},
        post(service, "/requirements", body, RECIPIENT),
    )


async def test_unknown_item_code(service: Service) -> None:
    problem = await refused(
        service, 422, {"body.item_code"},
        post(service, "/requirements", requirement_body(item_code="ART-999-NOPE"), RECIPIENT),
    )  # fmt: skip
    assert "not in the catalogue" in problem["detail"]
    await refused(
        service, 422, {"body.item_code"},
        post(service, "/pledges", pledge_body(item_code="NOPE-1"), DONOR_PL),
    )  # fmt: skip


@pytest.mark.parametrize("donor", ["XX", "POL", "p1", ""])
async def test_unknown_nation_codes(service: Service, donor: str) -> None:
    await refused(
        service, 422, {"body.donor"}, post(service, "/pledges", pledge_body(donor=donor), DONOR_PL)
    )


async def test_lower_case_nation_is_accepted_and_normalised(service: Service) -> None:
    pledge_id = await service.pledge(donor="pl")
    pledge = (await service.client.get(f"/pledges/{pledge_id}", headers=FORUM)).json()
    assert pledge["donor"] == "PL"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"value_eur": -1}, "body.value_eur"),
        ({"value_eur": 1e13}, "body.value_eur"),
        ({"source": "gift"}, "body.source"),
        ({"source_url": "javascript:alert(1)"}, "body.source_url"),
        ({"available_from": "15/01/2030"}, "body.available_from"),
    ],
)
async def test_bad_pledge_fields(service: Service, overrides: dict[str, Any], field: str) -> None:
    await refused(
        service, 422, {field}, post(service, "/pledges", pledge_body(**overrides), DONOR_PL)
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),  # names nothing to endorse or confirm
        ({"meeting_date": "2999-01-01", "confirm": ["PLG-1"]}, "body.meeting_date"),
        ({"confirm": ["REQ-1"]}, "body.confirm.0"),
        ({"endorse": [{"requirement_id": "REQ-1", "priority": 0}]}, "body.endorse.0.priority"),
    ],
)
async def test_bad_decision_bodies(service: Service, body: dict[str, Any], field: str) -> None:
    decision = {"meeting_date": "2025-01-01", "reference": "UDCG-27"} | body
    await refused(service, 422, {field}, post(service, "/decisions", decision, FORUM))


async def test_amend_with_nothing_to_change(service: Service) -> None:
    requirement_id = await service.submit()
    await refused(
        service,
        422,
        {"body"},
        post(service, f"/requirements/{requirement_id}/amend", {}, RECIPIENT),
    )


async def test_wrong_content_type(service: Service) -> None:
    send = lambda: service.client.post(  # noqa: E731
        "/requirements",
        content=str(requirement_body()),
        headers=RECIPIENT | {"Content-Type": "text/plain"},
    )
    await refused(service, 415, {"content-type"}, send)
    send_csv_as_json = lambda: service.client.post(  # noqa: E731
        "/imports/pledges", json={"rows": []}, headers=FORUM
    )
    await refused(service, 415, {"content-type"}, send_csv_as_json)


async def test_malformed_json(service: Service) -> None:
    send = lambda: service.client.post(  # noqa: E731
        "/requirements",
        content=b'{"item_code": ',
        headers=RECIPIENT | {"Content-Type": "application/json"},
    )
    await refused(service, 422, set(), send)


async def test_a_10_mb_body(service: Service) -> None:
    big = b"x" * 10_000_000
    send = lambda: service.client.post("/imports/pledges", content=big, headers=FORUM | CSV)  # noqa: E731
    await refused(service, 413, set(), send)


async def test_non_utf8_csv(service: Service) -> None:
    body = (HEADER + "PL,ART-155-HE,5,stock,2030-01-01,,https://ex.org/Kraków\n").encode("latin-1")
    send = lambda: service.client.post("/imports/pledges", content=body, headers=FORUM | CSV)  # noqa: E731
    problem = await refused(service, 400, {"body"}, send)
    assert "UTF-8" in problem["detail"]


async def test_csv_with_a_missing_column(service: Service) -> None:
    body = HEADER.replace(",source_url", "").encode() + b"PL,ART-155-HE,5,stock,2030-01-01,1\n"
    send = lambda: service.client.post("/imports/pledges", content=body, headers=ADMIN | CSV)  # noqa: E731
    await refused(service, 422, {"header.source_url"}, send)


async def test_duplicate_idempotency_key_with_another_body(service: Service) -> None:
    key = {"Idempotency-Key": f"dup-{await service.submit()}"}
    first = await service.post("/requirements", requirement_body(quantity=1), RECIPIENT | key)
    assert first.status_code == 201
    await refused(
        service,
        409,
        set(),
        post(service, "/requirements", requirement_body(quantity=2), RECIPIENT | key),
    )


async def test_stale_if_match(service: Service) -> None:
    pledge_id = await service.pledge(quantity=100)
    await service.post(f"/pledges/{pledge_id}/reduce", {"quantity": 90}, DONOR_PL)
    stale = DONOR_PL | {"If-Match": '"1"'}
    await refused(
        service, 412, set(), post(service, f"/pledges/{pledge_id}/reduce", {"quantity": 80}, stale)
    )


async def test_unknown_ids_are_404(service: Service) -> None:
    pledge_id = await service.pledge()
    for path in (
        "/requirements/REQ-NOPE",
        f"/requirements/{pledge_id}",
        "/streams/REQ-NOPE/events",
    ):
        answer = await service.client.get(path, headers=FORUM)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    await refused(
        service, 404, set(), post(service, "/pledges/PLG-NOPE/withdraw", {"reason": "x"}, DONOR_PL)
    )
