"""From a need to a confirmed pledge over HTTP, and the events that reach `aidline.requests`."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.contracts.topics import REQUESTS
from tests.infra import end_offsets, eventually, header, read_topic
from tests.integration.request.conftest import (
    DONOR_PL,
    FORUM,
    OBSERVER,
    RECIPIENT,
    Service,
    pledge_body,
    requirement_body,
    running,
)


async def _flow(svc: Service) -> dict[str, Any]:
    correlation = f"corr-{uuid.uuid4()}"
    submitted = await svc.post(
        "/requirements", requirement_body(priority=3), RECIPIENT | {"X-Correlation-ID": correlation}
    )
    assert submitted.status_code == 201
    assert submitted.headers["etag"] == '"1"'
    requirement_id = submitted.json()["id"]
    assert requirement_id.startswith("REQ-") and submitted.json()["version"] == 1

    pledged = await svc.post("/pledges", pledge_body(donor="pl"), DONOR_PL)
    assert pledged.status_code == 201, pledged.text
    pledge_id = pledged.json()["id"]

    decided = await svc.post(
        "/decisions",
        {
            "meeting_date": "2025-01-09",
            "reference": "UDCG-25",
            "endorse": [{"requirement_id": requirement_id, "priority": 1}],
            "confirm": [pledge_id],
        },
        FORUM,
    )
    assert decided.status_code == 201, decided.text
    decision_id = decided.json()["id"]
    assert decision_id.startswith("DEC-")

    requirement = (await svc.client.get(f"/requirements/{requirement_id}", headers=OBSERVER)).json()
    assert requirement["status"] == "endorsed"
    assert (requirement["priority"], requirement["decision_id"]) == (1, decision_id)
    pledge = await svc.client.get(f"/pledges/{pledge_id}", headers=RECIPIENT)
    assert pledge.headers["etag"] == '"2"'
    assert pledge.json()["status"] == "confirmed" and pledge.json()["donor"] == "PL"
    decision = (await svc.client.get(f"/decisions/{decision_id}", headers=DONOR_PL)).json()
    assert decision["endorsed"] == [{"requirement_id": requirement_id, "priority": 1}]
    assert decision["confirmed"] == [pledge_id]

    history = (await svc.client.get(f"/streams/{requirement_id}/events", headers=RECIPIENT)).json()
    assert [e["type"] for e in history["events"]] == [
        "requirement.submitted",
        "requirement.endorsed",
    ]
    assert history["events"][0]["actor"] == "recipient-tester"
    # Observers see what happened, not who did it (docs/access.md).
    seen = (await svc.client.get(f"/streams/{requirement_id}/events", headers=OBSERVER)).json()
    assert seen["events"][0]["actor"] is None and seen["events"][0]["redacted"]
    assert history["events"][0]["correlation_id"] == correlation
    return {
        "requirement": requirement_id,
        "pledge": pledge_id,
        "decision": decision_id,
        "correlation": correlation,
    }


async def test_from_a_need_to_a_confirmed_pledge_with_the_events_on_the_topic(
    service: Service,
) -> None:
    since = await end_offsets(REQUESTS)
    ids = await _flow(service)
    keys = {ids["requirement"], ids["pledge"], ids["decision"]}

    async def ours() -> list[Any]:
        return [r for r in await read_topic(REQUESTS, since) if r.key and r.key.decode() in keys]

    async def all_published() -> bool:
        return len(await ours()) == 5

    await eventually(all_published, what="the flow's five events on aidline.requests")
    records = await ours()
    by_type = {header(r, "ce_type"): r for r in records}
    assert set(by_type) == {
        "requirement.submitted",
        "pledge.announced",
        "requirement.endorsed",
        "pledge.confirmed",
        "decision.recorded",
    }
    for record in records:
        assert header(record, "ce_specversion") == "1.0"
        assert header(record, "ce_source") == "/aidline/request"
        assert header(record, "ce_subject") == record.key.decode()
        assert header(record, "content-type") == "application/json"
        uuid.UUID(header(record, "ce_id"))
    submitted = by_type["requirement.submitted"]
    assert submitted.key.decode() == ids["requirement"]
    assert header(submitted, "ce_correlationid") == ids["correlation"]
    assert header(submitted, "ce_actor") == "recipient-tester"
    assert header(by_type["pledge.announced"], "ce_actor") == "pl-mod@PL"
    assert header(by_type["requirement.endorsed"], "ce_actor") == "forum-tester"
    for decided in ("requirement.endorsed", "pledge.confirmed"):
        assert json.loads(by_type[decided].value)["decision_id"] == ids["decision"]
    assert json.loads(by_type["requirement.endorsed"].value)["priority"] == 1
    # One decision, one transaction: its three events sit side by side in the store.
    positions = sorted(
        int(header(by_type[t], "ce_position"))
        for t in ("requirement.endorsed", "pledge.confirmed", "decision.recorded")
    )
    assert positions == list(range(positions[0], positions[0] + 3))


async def test_the_same_flow_on_sqlite(kafka: str, sqlite_url: str) -> None:
    async with running(sqlite_url) as svc:
        await _flow(svc)
