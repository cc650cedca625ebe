"""Idempotency-Key under concurrency, on both backends: the key is reserved before the command
runs, so identical requests racing each other get one stored result and identical answers."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from shared.eventstore.tables import idempotency_keys, idempotency_reservations
from tests.infra import POSTGRES_URL
from tests.integration.request.conftest import FORUM, Service, running


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else POSTGRES_URL


async def _count(svc: Service, table: sa.Table) -> int:
    async with svc.runtime.db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def _head(svc: Service) -> int:
    async with svc.runtime.db.engine.connect() as conn:
        return await svc.runtime.store.head_position(conn)


# The service's consumer is off: these tests send it nothing, and reading the deliveries topic's
# history (thousands of events by then in a full run) held SQLite's one write lock long enough
# for a test's own read to time out ("database is locked", seen once in a fresh-clone run).
async def test_sixteen_concurrent_identical_requests_store_one_result(kafka: str, url: str) -> None:
    """Endorsing twice breaks a rule (409 rule-violation), so a duplicate that ran the command
    instead of waiting for the first's answer would show."""
    async with running(url, consumers_enabled=False) as svc:
        alone, raced = await svc.submit(priority=4), await svc.submit(priority=4)
        head = await _head(svc)
        single = await svc.post(f"/requirements/{alone}/endorse", {"priority": 2}, FORUM)
        assert single.status_code == 200, single.text
        events_per_endorsement = await _head(svc) - head
        head, records = await _head(svc), await _count(svc, idempotency_keys)

        key = FORUM | {"Idempotency-Key": f"endorse-{raced}"}
        answers = await asyncio.gather(
            *(svc.post(f"/requirements/{raced}/endorse", {"priority": 2}, key) for _ in range(16))
        )
        assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
        assert len({a.text for a in answers}) == 1, "one answer, sixteen times"
        assert len({a.headers["etag"] for a in answers}) == 1
        assert await _head(svc) - head == events_per_endorsement, "the command ran once"
        assert await _count(svc, idempotency_keys) == records + 1
        assert await _count(svc, idempotency_reservations) == 0, "every reservation released"

        other = await svc.post(f"/requirements/{raced}/endorse", {"priority": 3}, key)
        assert other.status_code == 409
        assert other.json()["type"].endswith("idempotency-key-conflict")
        assert await _head(svc) - head == events_per_endorsement


async def test_a_duplicate_waits_for_the_request_holding_the_key(kafka: str, url: str) -> None:
    """A request finding its key reserved (the first request still running) waits for the
    holder's record and answers with it; with another body it is refused at once; a reservation
    left by a process that died is taken over once stale."""
    async with running(url, consumers_enabled=False) as svc:
        requirement = await svc.submit(priority=4)
        path = f"/requirements/{requirement}/endorse"
        body = b'{"priority": 2}'
        first = await _post(svc, path, body, "first")
        assert first.status_code == 200, first.text

        await _reserve(svc, "held", _hash(path, body), datetime.now(UTC))
        duplicate = asyncio.create_task(_post(svc, path, body, "held"))
        refused = await _post(svc, path, b'{"priority": 3}', "held")
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("idempotency-key-conflict")
        assert not duplicate.done(), "the duplicate waits while the key is held"
        # The holder finishes: its record (the first's answer), then its release.
        async with svc.runtime.db.engine.begin() as conn:
            record = (
                await conn.execute(
                    sa.select(idempotency_keys).where(idempotency_keys.c.key == "first")
                )
            ).one()
            await conn.execute(idempotency_keys.insert().values(dict(record._mapping, key="held")))
            await conn.execute(idempotency_reservations.delete())
        answer = await duplicate
        assert answer.status_code == 200 and answer.json() == first.json()
        assert answer.headers["idempotent-replayed"] == "true"

        other = await svc.submit(priority=4)
        path = f"/requirements/{other}/endorse"
        await _reserve(svc, "stale", _hash(path, body), datetime.now(UTC) - timedelta(minutes=5))
        taken = await _post(svc, path, body, "stale")
        assert taken.status_code == 200, taken.text
        assert "idempotent-replayed" not in taken.headers
        assert await _count(svc, idempotency_reservations) == 0


async def _post(svc: Service, path: str, body: bytes, key: str) -> httpx.Response:
    headers = FORUM | {"Idempotency-Key": key, "Content-Type": "application/json"}
    return await svc.client.post(path, content=body, headers=headers)


def _hash(path: str, body: bytes) -> str:
    """The request's identity as `run_command` computes it."""
    return hashlib.sha256(b"POST" + path.encode() + b"\0" + body).hexdigest()


async def _reserve(svc: Service, key: str, request_hash: str, at: datetime) -> None:
    """Hold `key` as a request running its command does."""
    async with svc.runtime.db.engine.begin() as conn:
        await conn.execute(
            idempotency_reservations.insert().values(
                key=key, scope="forum-tester", request_hash=request_hash, reserved_at=at
            )
        )
