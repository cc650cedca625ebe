"""One contract for every storage backend (the `eventsourcing` library's recorder tests are the
model): the same tests prove the SQLite and the PostgreSQL module of each interface — the
database dialect, the event log and the consumers' tracker. (`db` runs each test on both.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.eventstore import EventStore
from shared.eventstore.tables import idempotency_keys, processed_events, relay_checkpoints
from shared.messaging.tracking import tracker_for
from tests.infra import eventually

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _event(stream_id: str, version: int, **data: object) -> dict[str, object]:
    return {
        "stream_id": stream_id,
        "stream_version": version,
        "event_id": uuid.uuid4(),
        "event_type": "ledger.credited",
        "schema_version": 1,
        "data": data,
        "meta": {"actor": "tester", "correlation_id": "c-1", "causation_id": "r-1"},
        "recorded_at": NOW,
    }


def _idempotency_row(key: str) -> tuple[sa.Table, dict[str, object]]:
    return idempotency_keys, {
        "key": key, "scope": "s", "request_hash": "h", "status_code": 201,
        "response": {"id": "L-1"}, "headers": {}, "created_at": NOW,
    }  # fmt: skip


# -- the dialect ------------------------------------------------------------------------------


async def test_bulk_rows_go_in_with_the_transaction(db: Database) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    async with db.engine.begin() as conn:
        await db.dialect.insert_rows(
            conn, processed_events, ("consumer", "event_id", "processed_at"),
            [("c", event_id, NOW) for event_id in ids],
        )  # fmt: skip
        await db.dialect.lock_transaction(conn, 42)  # held until commit, where there are locks
    async with db.engine.connect() as conn:
        stored = set((await conn.execute(sa.select(processed_events.c.event_id))).scalars())
    assert stored == set(ids)


# -- the event log ----------------------------------------------------------------------------


async def test_the_log_hands_out_positions_in_order_with_its_extra_rows(db: Database) -> None:
    log = EventStore(db).log
    new = [_event("L-1", 1, amount=1), _event("L-1", 2, amount=2), _event("L-2", 1, amount=3)]
    async with log.append_connection() as (conn, direct):
        positions = await log.insert(conn, new, [_idempotency_row("k")], direct=direct)
    assert [positions[e["event_id"]] for e in new] == sorted(positions.values())  # type: ignore[index]
    async with db.engine.connect() as conn:
        outbox = await log.read_outbox(conn, 0, 10)
        keys = (await conn.execute(sa.select(idempotency_keys.c.key))).scalars().all()
    assert keys == ["k"]
    assert [(r.stream_id, r.stream_version) for r in outbox] == [("L-1", 1), ("L-1", 2), ("L-2", 1)]
    first = outbox[0]
    assert (first.actor, first.correlation_id, first.causation_id) == ("tester", "c-1", "r-1")
    assert first.recorded_at == NOW and json.loads(first.payload) == {"amount": 1}
    async with db.engine.connect() as conn:
        assert [r.stream_version for r in await log.read_outbox(conn, first.position, 1)] == [2]


async def test_a_second_writer_at_a_version_is_a_version_conflict(db: Database) -> None:
    log = EventStore(db).log
    async with log.append_connection() as (conn, direct):
        await log.insert(conn, [_event("L-1", 1)], [], direct=direct)
    with pytest.raises(IntegrityError) as caught:
        async with log.append_connection() as (conn, direct):
            await log.insert(conn, [_event("L-1", 1)], [_idempotency_row("k")], direct=direct)
    assert log.is_version_conflict(str(caught.value.orig).lower())
    async with db.engine.connect() as conn:  # nothing of the losing unit was written
        assert len(await log.read_outbox(conn, 0, 10)) == 1
        assert not (await conn.execute(sa.select(idempotency_keys))).first()


async def test_one_leader_saves_checkpoints_and_hears_appends(db: Database) -> None:
    store = EventStore(db)
    async with db.engine.begin() as conn:
        await conn.execute(relay_checkpoints.insert().values(name="r", position=0, updated_at=NOW))
    woken = asyncio.Event()
    async with store.log.leadership("r", 0.05, woken.set) as leader:
        await store.log.save_checkpoint(leader, "r", 7, NOW)
        other = EventStore(Database(db.url, db.schema)) if db.dialect.shared_by_processes else None
        if other is not None:  # another process's append wakes the leader
            async with other.log.append_connection() as (conn, direct):
                await other.log.insert(conn, [_event("L-9", 1)], [], direct=direct)
            await asyncio.wait_for(woken.wait(), 10)
            await other.db.dispose()
    async with db.engine.connect() as conn:
        saved = await conn.scalar(sa.select(relay_checkpoints.c.position))
    assert saved == 7


# -- the tracker ------------------------------------------------------------------------------


async def test_the_tracker_knows_what_it_applied_and_where_it_is(db: Database) -> None:
    tracker = tracker_for(db, "c")
    applied, other = uuid.uuid4(), uuid.uuid4()
    tp = TopicPartition("t", 0)
    async with db.engine.begin() as conn:
        assert await tracker.applied(conn, {applied, other}) == set()
        await tracker.record(conn, [applied])
        await tracker.save_offsets(conn, {tp: 5})
    async with db.engine.begin() as conn:
        await tracker.save_offsets(conn, {tp: 9})  # the row exists now: updated
    async with db.engine.connect() as conn:
        assert await tracker.applied(conn, {applied, other}) == {applied}
        assert await tracker_for(db, "another").applied(conn, {applied}) == set()
    assert await tracker.stored_offsets([tp, TopicPartition("t", 1)]) == {tp: 9}


async def test_a_claim_records_the_ids_and_names_those_new(db: Database) -> None:
    tracker = tracker_for(db, "c")
    seen, new, undone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with db.engine.begin() as conn:
        await tracker.record(conn, [seen])
    async with db.engine.begin() as conn:
        assert await tracker.claim(conn, {seen, new}) == {new}
        assert await tracker.claim(conn, {new}) == set()  # this transaction has it already
    with pytest.raises(RuntimeError):
        async with db.engine.begin() as conn:
            assert await tracker.claim(conn, {undone}) == {undone}
            raise RuntimeError("the batch failed")
    async with db.engine.connect() as conn:
        assert await tracker.applied(conn, {seen, new, undone}) == {seen, new}


async def test_a_claim_another_transaction_holds_is_waited_for(pg_db: Database) -> None:
    """Two copies of a consumer (a rebalance) claiming one event: the second waits for the
    first's commit and finds the event applied, instead of applying it a second time."""
    tracker, event = tracker_for(pg_db, "c"), uuid.uuid4()

    async def waiting() -> bool:
        async with pg_db.engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            return bool(await conn.scalar(sa.text(f"{query} AND datname = current_database()")))

    async def second() -> set[uuid.UUID]:
        async with pg_db.engine.begin() as conn:
            return await tracker.claim(conn, {event})

    async with pg_db.engine.begin() as first:
        assert await tracker.claim(first, {event}) == {event}
        late = asyncio.create_task(second())
        await eventually(waiting, 10, "the second claim to wait")
        assert not late.done()
    assert await asyncio.wait_for(late, 10) == set()


async def test_a_handler_record_counts_as_applied_unless_asked_for_the_own(db: Database) -> None:
    audit = sa.Table("audit_rows", sa.MetaData(), sa.Column("event_id", sa.Uuid, unique=True))
    async with db.engine.begin() as conn:
        await conn.run_sync(audit.metadata.create_all)
        recorded = uuid.uuid4()
        await conn.execute(audit.insert().values(event_id=recorded))
    tracker = tracker_for(db, "c", recorded_by=audit.c.event_id)
    async with db.engine.connect() as conn:
        assert await tracker.applied(conn, {recorded}) == {recorded}
        assert await tracker.applied(conn, {recorded}, handler_record=False) == set()


async def test_the_database_ping_survives_a_pool_of_connections_the_server_closed(
    pg_db: Database,
) -> None:
    """After a database restart the pool's idle connections are dead: the readiness probe must
    not answer "not ready" for the first one it meets (seen in e2e: `/readyz` 503 minutes after
    a PostgreSQL crash, the database long back)."""
    await pg_db.engine.dispose()  # the pool holds exactly one connection from here
    async with pg_db.engine.connect() as conn:
        pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
    admin = Database(pg_db.url, pg_db.schema)
    try:
        async with admin.engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()
    await pg_db.ping()
