"""The allocation consumer's effects on a real database (SQLite and PostgreSQL): request and
delivery events in, allocation and shortfall events stored, re-planning on change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.allocation import consumers
from services.allocation.app import MIGRATIONS
from services.allocation.planning import Planning
from services.allocation.settings import AllocationSettings
from services.allocation.tables import allocations, shortfalls
from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import StoredEvent
from shared.eventstore import EventStore
from shared.eventstore.tables import events
from tests.infra import POSTGRES_URL, unique_schema
from tests.integration.allocation_support import Scenario, message


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db" if request.param == "sqlite" else POSTGRES_URL
    db = Database(url, unique_schema())
    await upgrade(db, MIGRATIONS)
    yield EventStore(db)
    await db.drop_schema()
    await db.dispose()


async def _feed(store: EventStore, items: list[StoredEvent], *, auto_approve: bool = False) -> None:
    handle = consumers.handler(Planning(AllocationSettings(auto_approve=auto_approve)))
    for item in items:
        async with store.transaction() as tx:
            await handle(tx, [message(item)])


async def _live(store: EventStore) -> dict[tuple[str, str], int]:
    async with store.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(allocations).where(allocations.c.status.in_(("proposed", "approved")))
        )
        return {(r.requirement_id, r.pledge_id): r.quantity - r.lost for r in rows}


async def _rows(store: EventStore, **where: Any) -> list[Any]:
    async with store.db.engine.connect() as conn:
        query = sa.select(allocations).where(
            *(allocations.c[name] == value for name, value in where.items())
        )
        return list(await conn.execute(query.order_by(allocations.c.allocation_id)))


async def _shortfall(store: EventStore, requirement_id: str) -> int | None:
    async with store.db.engine.connect() as conn:
        return await conn.scalar(
            sa.select(shortfalls.c.open_quantity).where(
                shortfalls.c.requirement_id == requirement_id
            )
        )


async def _types(store: EventStore) -> list[str]:
    async with store.db.engine.connect() as conn:
        return list(
            (
                await conn.execute(sa.select(events.c.event_type).order_by(events.c.position))
            ).scalars()
        )


async def test_endorsed_needs_meet_confirmed_pledges(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 100, 1) + s.requirement("R2", 50, 3))
    assert await _live(store) == {}
    assert await _shortfall(store, s.id("R1")) == 100
    await _feed(store, s.pledge("P1", 120))
    assert await _live(store) == {(s.id("R1"), s.id("P1")): 100, (s.id("R2"), s.id("P1")): 20}
    assert await _shortfall(store, s.id("R1")) == 0  # recorded earlier, now covered
    assert await _shortfall(store, s.id("R2")) == 30
    (row,) = await _rows(store, requirement_id=s.id("R1"))
    # Unknown capability (items not in the catalogue): the general hub.
    assert (row.hub, row.handover_by.isoformat(), row.status) == (
        "PL-RZE",
        "2025-06-01",
        "proposed",
    )


async def test_announced_pledges_and_submitted_needs_are_not_matched(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 10, 1)[:1] + s.pledge("P1", 10)[:1])
    assert await _live(store) == {}
    assert await _types(store) == []


async def test_a_need_or_pledge_announced_again_keeps_its_first_row(store: EventStore) -> None:
    s = Scenario()
    need, pledge = s.requirement("R1", 100, 1), s.pledge("P1", 120)
    await _feed(store, need + pledge)
    await _feed(store, need[:1] + pledge[:1])  # submitted and announced once more
    # Still endorsed and confirmed (a second insert would have failed the batch, an overwrite
    # set them back to submitted and announced), so the match stands.
    assert await _live(store) == {(s.id("R1"), s.id("P1")): 100}


async def test_catalogue_substitutes_join_families_and_pick_the_hub(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 40, 2) + s.pledge("P-er", 40, item=s.substitute))
    assert await _live(store) == {}, "not substitutes until the catalogue says so"
    await _feed(store, s.items())
    assert await _live(store) == {(s.id("R1"), s.id("P-er")): 40}
    (row,) = await _rows(store, requirement_id=s.id("R1"))
    assert row.hub == "RO-SUC"  # artillery


async def test_auto_approve_approves_as_it_proposes(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 10, 2) + s.pledge("P1", 10), auto_approve=True)
    (row,) = await _rows(store, requirement_id=s.id("R1"))
    assert (row.status, row.approved_by, row.version) == ("approved", "auto-approve", 2)
    assert await _types(store) == [
        "shortfall.recorded",
        "allocation.proposed",
        "allocation.approved",
        "shortfall.recorded",
    ]


async def test_withdrawal_cancels_with_the_reason_and_rematches(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 60, 1) + s.pledge("P1", 60), auto_approve=True)
    await _feed(store, s.pledge("P2", 100))
    await _feed(store, [s.withdraw("P1", "needed at home")])
    (cancelled,) = await _rows(store, pledge_id=s.id("P1"))
    assert cancelled.status == "cancelled"
    assert cancelled.reason == f"pledge {s.id('P1')} withdrawn: needed at home"
    assert await _live(store) == {(s.id("R1"), s.id("P2")): 60}


async def test_reduction_shrinks_a_commitment_by_cancel_and_replacement(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 60, 1) + s.pledge("P1", 60), auto_approve=True)
    await _feed(store, [s.reduce("P1", 45)])
    statuses = {r.status: r for r in await _rows(store, pledge_id=s.id("P1"))}
    assert statuses["cancelled"].quantity == 60
    assert "shrinks from 60 to 45" in statuses["cancelled"].reason
    assert (statuses["approved"].quantity, statuses["approved"].approved_by) == (45, "auto-approve")
    assert await _shortfall(store, s.id("R1")) == 15


async def test_amendments_and_cancellation_replan(store: EventStore) -> None:
    s = Scenario()
    await _feed(store, s.requirement("R1", 60, 3) + s.requirement("R2", 60, 3) + s.pledge("P1", 60))
    assert sum((await _live(store)).values()) == 60
    await _feed(store, [s.amend("R2", priority=1)])
    assert await _live(store) == {(s.id("R2"), s.id("P1")): 60}
    await _feed(store, [s.cancel("R2")])
    assert await _live(store) == {(s.id("R1"), s.id("P1")): 60}
    await _feed(store, [s.amend("R1", quantity=20)])
    assert await _live(store) == {(s.id("R1"), s.id("P1")): 20}


async def test_a_lost_shipment_rematches_the_lost_units(store: EventStore) -> None:
    s = Scenario()
    await _feed(
        store, s.requirement("R1", 50, 1) + s.pledge("P1", 50) + s.pledge("P2", 30),
        auto_approve=True,
    )  # fmt: skip
    (first,) = await _rows(store, requirement_id=s.id("R1"))
    await _feed(store, [s.shipment("S1", first._asdict(), 50), s.lost("S1", 20)])
    # The shipped allocation stays (30 still on their way); the 20 lost come from P2.
    assert await _live(store) == {(s.id("R1"), s.id("P1")): 30, (s.id("R1"), s.id("P2")): 20}
    await _feed(store, [s.lost("S1", 30)])
    (gone,) = await _rows(store, pledge_id=s.id("P1"))
    assert gone.status == "cancelled"
    assert gone.reason.startswith(f"shipment {s.id('S1')} lost 30: ambush")
    assert await _live(store) == {(s.id("R1"), s.id("P2")): 30}
    assert await _shortfall(store, s.id("R1")) == 20


async def _stored(store: EventStore, event_type: str) -> list[StoredEvent]:
    async with store.db.engine.connect() as conn:
        stored = await store.read_after(conn, 0, 1000)
    return [e for e in stored if e.event_type == event_type]


async def test_proposals_carry_the_decisions_and_follow_up_their_trigger(store: EventStore) -> None:
    """Lineage (issue 17): the decision that endorsed the requirement and the one that confirmed
    the pledge reach `allocation.proposed`, which names the confirmation as its cause and keeps
    its correlation id (the forum meeting's request)."""
    s = Scenario(correlation_id="meeting-2")
    endorsed = s.requirement("R1", 10, 2, decision="DEC-1")
    confirmed = s.pledge("P1", 10, decision="DEC-2")
    await _feed(store, endorsed + confirmed, auto_approve=True)
    (proposed,) = await _stored(store, "allocation.proposed")
    assert proposed.schema_version == 2
    assert (proposed.data["endorsed_by_decision"], proposed.data["confirmed_by_decision"]) == (
        "DEC-1",
        "DEC-2",
    )
    (approved,) = await _stored(store, "allocation.approved")
    for follow_up in (proposed, approved):
        assert follow_up.meta.causation_id == str(confirmed[-1].event_id)
        assert follow_up.meta.correlation_id == "meeting-2"


async def test_in_a_batch_each_family_follows_up_the_event_that_changed_it(
    store: EventStore,
) -> None:
    s = Scenario()
    other = Scenario()
    await _feed(store, s.requirement("R1", 10, 2) + other.requirement("R1", 10, 2))
    mine, theirs = s.pledge("P1", 10), other.pledge("P1", 10)
    handle = consumers.handler(Planning(AllocationSettings()))
    async with store.transaction() as tx:  # one batch, two families: the last event is theirs
        await handle(tx, [message(e) for e in mine + theirs])
    causes = {
        e.data["requirement_id"]: e.meta.causation_id
        for e in await _stored(store, "allocation.proposed")
    }
    assert causes == {
        s.id("R1"): str(mine[-1].event_id),
        other.id("R1"): str(theirs[-1].event_id),
    }
