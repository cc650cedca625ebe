"""The live stream is bounded, over HTTP against a real projection process (PostgreSQL, Kafka):
resume depth (410 beyond it), streams per principal and in all (429), the stream ends when its
token expires, and the single-use stream ticket that replaces a token in the URL."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.auth import DEV_SECRET, Role, mint_token
from tests.authkit import bearer
from tests.infra import eventually, produce
from tests.projection import Projection, Topics, auth, event, projection_service

MAX_RESUME = 120
RING = 100  # the smallest ring: a resume further back than this is read from the audit


@pytest.fixture(scope="module")
async def topics(kafka: str) -> Topics:
    return await Topics.fresh()


@pytest.fixture(scope="module")
async def service(topics: Topics) -> AsyncIterator[Projection]:
    async with projection_service(
        topics,
        STREAM_MAX_RESUME_EVENTS=str(MAX_RESUME),
        STREAM_BUFFER_SIZE=str(RING),
        STREAM_MAX_PER_PRINCIPAL="2",
        STREAM_MAX_TOTAL="3",
        JWT_LEEWAY_SECONDS="0",  # a token's expiry is its `exp`, to the second
    ) as svc:
        yield svc


@contextlib.asynccontextmanager
async def stream(
    service: Projection, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[tuple[httpx.Response, AsyncIterator[str]]]:
    """Open the stream (its slot is taken once it answers 200); its lines, or a problem read."""
    async with service.client.stream(
        "GET", "/events/stream", headers=headers or {}, params=params
    ) as response:
        if response.status_code != 200:
            await response.aread()
        yield response, response.aiter_lines()


async def _ids(lines: AsyncIterator[str], count: int) -> list[str]:
    ids: list[str] = []
    async for line in lines:
        if line.startswith("id:"):
            ids.append(line[3:].strip())
            if len(ids) == count:
                break
    return ids


def _problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{kind}"), body
    return body


async def test_a_resume_reaches_back_so_far_and_no_further(
    service: Projection, topics: Topics
) -> None:
    requirement = f"REQ-RS-{uuid.uuid4().hex[:8]}"
    events = [event(requirement, 1, "requirement.submitted", {
        "requirement_id": requirement, "item_code": "AD-IRIST-SLM", "quantity": 3,
        "unit": "systems", "priority": 1, "needed_by": "2026-12-24", "destination": "Kyiv",
        "justification": "stream limits"})] + [
        event(requirement, v, "requirement.amended", {"quantity": v}) for v in range(2, 131)
    ]  # fmt: skip
    await produce(topics.requests, events)
    applied = await service.client.get(
        f"/board/requirements/{requirement}",
        params={"after_event": str(events[-1].event_id)}, headers=auth("planner"),
    )  # fmt: skip
    assert applied.status_code == 200, applied.text
    ids = [str(e.event_id) for e in events]

    # 124 events back: more than the stream replays. A clear answer, pointing to the board.
    async with stream(service, auth("planner") | {"Last-Event-ID": ids[5]}) as (response, _):
        body = _problem(response, 410, "resume-too-old")
        assert "/board/requirements" in body["detail"] and str(MAX_RESUME) in body["detail"]
    # 109 back: past the ring, within the cap; read from the audit, in order, then live.
    async with stream(service, auth("planner"), since=ids[20]) as (response, lines):
        assert response.status_code == 200
        assert await asyncio.wait_for(_ids(lines, 109), 30) == ids[21:]
    # 4 back: from the ring.
    async with stream(service, auth("planner") | {"Last-Event-ID": ids[-5]}) as (response, lines):
        assert await asyncio.wait_for(_ids(lines, 4), 30) == ids[-4:]
    # An id the stream never sent, and something that is no event id at all.
    async with stream(service, auth("planner"), since=str(uuid.uuid4())) as (response, _):
        _problem(response, 410, "resume-too-old")
    async with stream(service, auth("planner"), since="not-an-id") as (response, _):
        _problem(response, 422, "unprocessable-content")


async def test_streams_are_capped_per_principal_and_in_all(service: Projection) -> None:
    anna, ben, cleo = (bearer(Role.OBSERVER, sub=name) for name in ("anna", "ben", "cleo"))
    async with contextlib.AsyncExitStack() as held:
        first, _ = await held.enter_async_context(stream(service, anna))
        second, _ = await held.enter_async_context(stream(service, anna))
        assert first.status_code == second.status_code == 200
        async with stream(service, anna) as (third, _):
            body = _problem(third, 429, "too-many-streams")
            assert "anna" in body["detail"] and int(third.headers["retry-after"]) > 0
        assert (await held.enter_async_context(stream(service, ben)))[0].status_code == 200
        async with stream(service, cleo) as (fourth, _):  # 3 open: the service is full
            _problem(fourth, 429, "too-many-streams")
    # All closed: the slots come back as the service notices the clients have gone.

    async def cleo_gets_one() -> bool:
        async with stream(service, cleo) as (response, _):
            return response.status_code == 200

    await eventually(cleo_gets_one, timeout=15, what="a slot freed by closed streams")


async def test_a_stream_ends_when_its_token_expires(service: Projection) -> None:
    short = mint_token(DEV_SECRET, "brief", [Role.OBSERVER], ttl_seconds=2)
    started = time.monotonic()
    async with stream(service, {"Authorization": f"Bearer {short}"}) as (response, lines):
        assert response.status_code == 200
        rest = await asyncio.wait_for(_drain(lines), 15)
    assert "event: expired" in rest
    assert time.monotonic() - started < 5  # at the token's expiry, not at some later ping


async def _drain(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


async def test_a_ticket_opens_one_stream_and_a_token_in_the_url_none(
    service: Projection,
) -> None:
    assert (await service.client.post("/events/stream/tickets")).status_code == 401
    issued = await service.client.post("/events/stream/tickets", headers=auth("observer"))
    assert issued.status_code == 201, issued.text
    ticket = issued.json()["ticket"]
    assert 0 < issued.json()["expires_in"] <= 60
    async with stream(service, ticket=ticket) as (response, _):
        assert response.status_code == 200
        async with stream(service, ticket=ticket) as (again, _):  # spent
            _problem(again, 401, "invalid-ticket")
    async with stream(service, ticket="made-up") as (response, _):
        _problem(response, 401, "invalid-ticket")
    token = auth("observer")["Authorization"].removeprefix("Bearer ")
    async with stream(service, access_token=token) as (response, _):
        _problem(response, 401, "token-in-url")


async def test_a_ticket_carries_its_tokens_principal_and_expiry(service: Projection) -> None:
    short = mint_token(DEV_SECRET, "dora", [Role.OBSERVER], ttl_seconds=2)
    issued = await service.client.post(
        "/events/stream/tickets", headers={"Authorization": f"Bearer {short}"}
    )
    assert issued.json()["expires_in"] <= 2
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(stream(service, bearer(Role.OBSERVER, sub="dora")))
        response, lines = await held.enter_async_context(
            stream(service, ticket=issued.json()["ticket"])
        )
        assert response.status_code == 200
        async with stream(service, bearer(Role.OBSERVER, sub="dora")) as (third, _):
            _problem(third, 429, "too-many-streams")  # the ticket's stream is dora's
        assert "event: expired" in await asyncio.wait_for(_drain(lines), 15)
