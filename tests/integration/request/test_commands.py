"""The single-item commands: one-off endorse/confirm, amend, cancel, reduce, withdraw; If-Match,
Idempotency-Key; and the all-or-nothing forum decision."""

from __future__ import annotations

import asyncio

from tests.integration.request.conftest import (
    DONOR_PL,
    FORUM,
    RECIPIENT,
    Service,
    requirement_body,
)


async def _events(svc: Service, stream_id: str) -> list[str]:
    answer = await svc.client.get(f"/streams/{stream_id}/events", headers=FORUM)
    return [e["type"] for e in answer.json()["events"]]


async def test_one_off_endorsement_and_confirmation_are_recorded_as_decisions(
    service: Service,
) -> None:
    requirement_id = await service.submit(priority=4)
    endorsed = await service.post(f"/requirements/{requirement_id}/endorse", {"priority": 2}, FORUM)
    assert endorsed.status_code == 200, endorsed.text
    body = endorsed.json()
    assert body["id"] == requirement_id and body["version"] == 2
    decision = (await service.client.get(f"/decisions/{body['decision_id']}", headers=FORUM)).json()
    assert decision["endorsed"] == [{"requirement_id": requirement_id, "priority": 2}]
    assert decision["reference"] == "one-off endorsement"
    again = await service.post(f"/requirements/{requirement_id}/endorse", None, FORUM)
    assert again.status_code == 409
    assert "already endorsed" in again.json()["detail"]

    pledge_id = await service.pledge()
    confirmed = await service.client.post(f"/pledges/{pledge_id}/confirm", headers=FORUM)  # no body
    assert confirmed.status_code == 200, confirmed.text
    history = (await service.client.get(f"/streams/{pledge_id}/events", headers=FORUM)).json()
    assert history["events"][-1]["event_id"] == confirmed.json()["event_id"]
    assert history["events"][-1]["data"] == {"decision_id": confirmed.json()["decision_id"]}


async def test_amend_cancel_and_the_rules_behind_them(service: Service) -> None:
    requirement_id = await service.submit(quantity=100)
    amended = await service.post(
        f"/requirements/{requirement_id}/amend", {"quantity": 150}, RECIPIENT
    )
    assert amended.status_code == 200 and amended.json()["version"] == 2
    by_forum = await service.post(f"/requirements/{requirement_id}/amend", {"priority": 1}, FORUM)
    assert by_forum.status_code == 200
    cancelled = await service.post(
        f"/requirements/{requirement_id}/cancel", {"reason": "covered nationally"}, RECIPIENT
    )
    assert cancelled.status_code == 200
    refused = await service.post(f"/requirements/{requirement_id}/endorse", {}, FORUM)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "cancelled (covered nationally); it cannot be endorsed" in refused.json()["detail"]
    assert await _events(service, requirement_id) == [
        "requirement.submitted",
        "requirement.amended",
        "requirement.amended",
        "requirement.cancelled",
    ]


async def test_reduce_and_withdraw_by_the_pledging_donor(service: Service) -> None:
    pledge_id = await service.pledge(quantity=60)
    reduced = await service.post(f"/pledges/{pledge_id}/reduce", {"quantity": 40}, DONOR_PL)
    assert reduced.status_code == 200 and reduced.json()["version"] == 2
    above = await service.post(f"/pledges/{pledge_id}/reduce", {"quantity": 50}, DONOR_PL)
    assert above.status_code == 409 and "stands at 40 rounds" in above.json()["detail"]
    withdrawn = await service.post(
        f"/pledges/{pledge_id}/withdraw", {"reason": "needed at home"}, DONOR_PL
    )
    assert withdrawn.status_code == 200
    pledge = (await service.client.get(f"/pledges/{pledge_id}", headers=FORUM)).json()
    assert (pledge["status"], pledge["quantity"]) == ("withdrawn", 40)


async def test_if_match_guards_against_lost_updates(service: Service) -> None:
    requirement_id = await service.submit()
    path = f"/requirements/{requirement_id}/amend"
    ok = await service.post(path, {"priority": 1}, RECIPIENT | {"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    before = await service.snapshot()
    stale = await service.post(path, {"priority": 3}, RECIPIENT | {"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.headers["etag"] == '"2"'
    assert await service.snapshot() == before
    malformed = await service.post(path, {"priority": 3}, RECIPIENT | {"If-Match": "yesterday"})
    assert malformed.status_code == 400


async def test_idempotency_key_replays_and_refuses_another_body(service: Service) -> None:
    key = {"Idempotency-Key": "submit-once-" + (await service.submit())}
    first = await service.post("/requirements", requirement_body(), RECIPIENT | key)
    before = await service.snapshot()
    replay = await service.post("/requirements", requirement_body(), RECIPIENT | key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    other = await service.post("/requirements", requirement_body(quantity=7), RECIPIENT | key)
    assert other.status_code == 409
    assert other.json()["type"].endswith("idempotency-key-conflict")
    assert await service.snapshot() == before


async def test_concurrent_requests_with_one_key_store_one_command(service: Service) -> None:
    key = {"Idempotency-Key": "raced-" + (await service.submit())}
    head, keys = await service.snapshot()
    answers = await asyncio.gather(
        *(service.post("/requirements", requirement_body(), RECIPIENT | key) for _ in range(8))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await service.snapshot() == (head + 1, keys + 1)


async def test_a_decision_is_all_or_nothing(service: Service) -> None:
    good, cancelled = await service.submit(), await service.submit()
    await service.post(f"/requirements/{cancelled}/cancel", {"reason": "void"}, RECIPIENT)
    pledge_id = await service.pledge()
    before = await service.snapshot()
    refused = await service.post(
        "/decisions",
        {
            "meeting_date": "2025-02-14",
            "reference": "UDCG-26",
            "endorse": [{"requirement_id": good}, {"requirement_id": cancelled}],
            "confirm": [pledge_id],
        },
        FORUM,
    )
    assert refused.status_code == 409
    assert f"{cancelled} was cancelled (void)" in refused.json()["detail"]
    assert await service.snapshot() == before
    assert await _events(service, good) == ["requirement.submitted"]
    assert await _events(service, pledge_id) == ["pledge.announced"]

    unknown = await service.post(
        "/decisions",
        {
            "meeting_date": "2025-02-14",
            "reference": "UDCG-26",
            "endorse": [{"requirement_id": good}, {"requirement_id": "REQ-0NOSUCHTHING"}],
        },
        FORUM,
    )
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["body.endorse.1.requirement_id"]
    assert await service.snapshot() == before


async def test_two_decisions_racing_for_one_pledge_one_wins(service: Service) -> None:
    pledge_id = await service.pledge()
    requirements = [await service.submit(), await service.submit()]

    def decision(requirement_id: str) -> dict[str, object]:
        return {
            "meeting_date": "2025-03-01",
            "reference": f"race for {pledge_id}",
            "endorse": [{"requirement_id": requirement_id}],
            "confirm": [pledge_id],
        }

    answers = await asyncio.gather(
        *(service.post("/decisions", decision(r), FORUM) for r in requirements)
    )
    assert sorted(a.status_code for a in answers) == [201, 409]
    assert await _events(service, pledge_id) == ["pledge.announced", "pledge.confirmed"]
    loser = requirements[[a.status_code for a in answers].index(409)]
    assert await _events(service, loser) == ["requirement.submitted"]  # nothing of it stored
