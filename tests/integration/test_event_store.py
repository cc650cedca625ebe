"""The event store on both backends: appends, optimistic concurrency, atomic multi-stream writes."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.db.migrate import upgrade
from shared.db.on_demand import ConnectionOnDemand
from shared.domain import Metadata, NewEvent
from shared.eventstore import ConcurrencyError, EventStore, Repository
from shared.eventstore.postgres import PostgresEventLog
from shared.eventstore.tables import idempotency_keys
from tests.conftest import MIGRATIONS
from tests.sample_domain import Credited, Ledger, registry

META = Metadata(actor="tester")


def _credits(*amounts: int) -> list[NewEvent]:
    return [registry.encode(Credited(amount=a), META) for a in amounts]


async def test_append_and_read_back(db: Database) -> None:
    store = EventStore(db)
    stored = await store.append("L-1", 0, _credits(1, 2))
    await store.append("L-2", 0, _credits(3))
    await store.append("L-1", 2, _credits(4))
    async with db.engine.connect() as conn:
        history = await store.read_stream(conn, "L-1")
        everything = await store.read_after(conn, 0, 100)
    assert [e.stream_version for e in history] == [1, 2, 3]
    assert [e.data["amount"] for e in history] == [1, 2, 4]
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert [e.stream_id for e in everything] == ["L-1", "L-1", "L-2", "L-1"]
    assert stored[0].meta.actor == "tester"


async def test_concurrent_appends_to_one_stream_exactly_one_wins(db: Database) -> None:
    store = EventStore(db)
    await store.append("L-1", 0, _credits(1))

    async def writer(amount: int) -> bool:
        try:
            await store.append("L-1", 1, _credits(amount))
            return True
        except ConcurrencyError:
            return False

    results = await asyncio.gather(*(writer(i) for i in range(2, 12)))
    assert results.count(True) == 1
    async with db.engine.connect() as conn:
        assert [e.stream_version for e in await store.read_stream(conn, "L-1")] == [1, 2]


async def test_multi_stream_transaction_is_all_or_nothing(db: Database) -> None:
    store = EventStore(db)
    await store.append("L-2", 0, _credits(1))
    with pytest.raises(ConcurrencyError):
        async with store.transaction() as tx:
            tx.append("L-1", 0, _credits(5))
            tx.append("L-2", 0, _credits(6))  # L-2 is already at version 1
    async with db.engine.connect() as conn:
        assert await store.read_stream(conn, "L-1") == []
        assert len(await store.read_after(conn, 0, 100)) == 1


async def test_a_savepoint_is_kept_or_undone_whole_with_its_events(db: Database) -> None:
    store = EventStore(db)
    await store.append("L-2", 0, _credits(1))
    async with store.transaction() as tx:
        tx.append("L-1", 0, _credits(1))  # queued before: kept whatever the savepoint does
        with pytest.raises(ConcurrencyError):
            async with tx.savepoint():
                tx.append("L-3", 0, _credits(2))
                tx.append("L-2", 0, _credits(3))  # L-2 is at version 1: the savepoint fails
        with pytest.raises(RuntimeError):
            async with tx.savepoint():
                tx.append("L-4", 0, _credits(4))
                raise RuntimeError("undone before anything was appended")
        async with tx.savepoint():
            tx.append("L-5", 0, _credits(5))
    assert [e.stream_id for e in tx.stored] == ["L-1", "L-5"]
    async with db.engine.connect() as conn:
        everything = await store.read_after(conn, 0, 100)
    assert [e.stream_id for e in everything] == ["L-2", "L-1", "L-5"]


async def test_an_append_only_unit_writes_its_events_and_rows_together(db: Database) -> None:
    store = EventStore(db)
    await store.append("L-2", 0, _credits(1))
    record = {"key": "k-1", "scope": "s", "request_hash": "h", "status_code": 201,
              "response": {"id": "L-1", "n": [1, 2]}, "headers": {"ETag": '"1"'},
              "created_at": datetime.now(UTC)}  # fmt: skip
    with pytest.raises(ConcurrencyError):  # the second stream conflicts: nothing is written
        async with store.append_only() as tx:
            tx.append("L-1", 0, _credits(5))
            tx.append("L-2", 0, _credits(6))
            tx.add_row(idempotency_keys, record)
    queued = _credits(5, 6)
    async with store.append_only() as tx:
        tx.append("L-1", 0, queued)
        tx.add_row(idempotency_keys, record)
        assert tx.last_event_id == queued[-1].event_id
    assert [e.stream_version for e in tx.stored] == [1, 2]
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(idempotency_keys))).all()
        assert [e.stream_id for e in await store.read_after(conn, 0, 100)] == ["L-2", "L-1", "L-1"]
    assert [(r.key, r.response, r.headers) for r in rows] == [
        ("k-1", record["response"], record["headers"])
    ]


async def test_an_append_only_unit_has_committed_when_its_statement_returns(
    pg_db: Database,
) -> None:
    """The commit-order lock is never held across a round trip to the client: once the one
    statement has run, another connection sees the events and can take the lock."""
    store = EventStore(pg_db)
    assert isinstance(store.log, PostgresEventLog)
    async with store.append_only() as tx:
        tx.append("L-1", 0, _credits(1))
        await tx.flush()
        async with pg_db.engine.connect() as other:
            assert len(await store.read_after(other, 0, 10)) == 1
            taken = await other.scalar(
                sa.select(sa.func.pg_try_advisory_xact_lock(store.log.lock_key))
            )
            assert taken is True
        with pytest.raises(RuntimeError, match="writes once"):
            tx.append("L-1", 1, _credits(2))
            await tx.flush()
    with pytest.raises(RuntimeError, match="no savepoints"):
        async with store.append_only() as tx, tx.savepoint():
            pass


async def test_a_large_append_is_one_statement_in_order(db: Database) -> None:
    store = EventStore(db)
    async with store.append_only() as tx:
        for n in range(50):
            tx.append(f"L-{n}", 0, _credits(*range(100)))
    assert len(tx.stored) == 5000
    async with db.engine.connect() as conn:
        everything = await store.read_after(conn, 0, 10_000)
    assert [(e.stream_id, e.stream_version) for e in everything] == [
        (f"L-{n}", v) for n in range(50) for v in range(1, 101)
    ]
    assert [e.position for e in everything] == [e.position for e in tx.stored]


async def test_stored_times_keep_their_zone_on_every_backend(db: Database) -> None:
    store = EventStore(db)
    await store.append("L-1", 0, _credits(1))
    async with db.engine.connect() as conn:
        (read,) = await store.read_stream(conn, "L-1")
        (outbox,) = await store.read_outbox(conn, 0, 10)
    assert read.recorded_at.utcoffset() == outbox.recorded_at.utcoffset() == timedelta(0)


async def test_event_ids_are_unique_forever(db: Database) -> None:
    store = EventStore(db)
    event = _credits(1)[0]
    await store.append("L-1", 0, [event])
    with pytest.raises(IntegrityError):
        await store.append("L-2", 0, [event])


async def test_repository_saves_and_rehydrates_with_upcasting(db: Database) -> None:
    store = EventStore(db)
    repo = Repository(Ledger, registry)
    async with store.transaction() as tx:
        ledger = Ledger.open("L-9", "ua")
        ledger.credit(10)
        repo.save(tx, ledger, META)
    # An "opened" event as release 1 stored it (schema v1, no currency) is upcast on load.
    old = NewEvent(event_type="ledger.opened", schema_version=1, data={"owner": "pl"})
    await store.append("L-10", 0, [old])
    async with store.transaction() as tx:
        loaded = await repo.get(tx, "L-9")
        assert loaded is not None
        assert (loaded.owner, loaded.currency, loaded.balance, loaded.version) == (
            "ua",
            "EUR",
            10,
            2,
        )
        loaded.credit(5)
        repo.save(tx, loaded, META)
    async with store.transaction() as tx:
        again = await repo.get(tx, "L-9")
        old_ledger = await repo.get(tx, "L-10")
    assert again is not None and again.balance == 15 and again.version == 3
    assert old_ledger is not None and (old_ledger.owner, old_ledger.currency) == ("pl", "EUR")


async def test_migrations_are_idempotent(db: Database) -> None:
    await upgrade(db, MIGRATIONS)
    await upgrade(db, MIGRATIONS)
    store = EventStore(db)
    await store.append("L-1", 0, _credits(1))


async def test_business_time_is_stored_beside_record_time_and_defaults_to_it(
    db: Database,
) -> None:
    """`occurred_at` lives in the metadata: read back by the store and by the relay's outbox
    read (ISO text, as the envelope sends it); an event without one occurred when recorded."""
    announced = datetime(2022, 4, 28, 9, 30, tzinfo=UTC)
    store = EventStore(db)
    dated = [registry.encode(Credited(amount=1), META.occurred(announced))]
    await store.append("L-9", 0, dated + _credits(2))
    async with db.engine.connect() as conn:
        first, second = await store.read_stream(conn, "L-9")
        outbox = [r for r in await store.read_outbox(conn, 0, 100) if r.stream_id == "L-9"]
    assert first.occurred_at == announced != first.recorded_at
    assert first.meta.occurred_at == announced
    assert second.meta.occurred_at is None and second.occurred_at == second.recorded_at
    assert [r.occurred_at for r in outbox] == [announced.isoformat(), None]


async def test_jsonb_parameters_encode_as_before(pg_db: Database) -> None:
    """orjson on the append path: keys that are not strings become strings and integers beyond
    64 bits are kept, as with json.dumps; NaN is refused (PostgreSQL refused json.dumps' NaN)
    and nothing is stored."""
    store = EventStore(pg_db)
    data = {"1": "one", "big": 2**70, "nested": {"x": [1.5, None, "é"]}}
    raw: dict[Any, Any] = {1: "one", "big": 2**70, "nested": {"x": [1.5, None, "é"]}}
    await store.append("J-1", 0, [NewEvent("probe", 1, raw, META)])
    with pytest.raises(ValueError):
        await store.append("J-2", 0, [NewEvent("probe", 1, {"x": [float("nan")]}, META)])
    async with pg_db.engine.connect() as conn:
        assert [e.data for e in await store.read_after(conn, 0, 10)] == [data]


def _key_record(key: str) -> dict[str, object]:
    return {"key": key, "scope": "s", "request_hash": "h", "status_code": 201,
            "response": {"id": key}, "headers": {}, "created_at": datetime.now(UTC)}  # fmt: skip


async def _units(store: EventStore, streams: list[tuple[str, int]]) -> list[object]:
    """One append-only unit of work per (stream, expected version), all at once, each with
    an idempotency record; what each ended with (its stored events or its error)."""

    async def unit(stream_id: str, version: int) -> object:
        async with store.append_only() as tx:
            tx.append(stream_id, version, _credits(version + 1))
            tx.add_row(idempotency_keys, _key_record(f"{stream_id}@{version}"))
        return tx.stored

    return await asyncio.gather(*(unit(*s) for s in streams), return_exceptions=True)


def _count_checkouts(db: Database) -> list[int]:
    """A one-item list counting the pool's checkouts from now on."""
    count = [0]

    def checked_out(*_: object) -> None:
        count[0] += 1

    sa.event.listen(db.engine.sync_engine, "checkout", checked_out)
    return count


async def test_a_connection_on_demand_is_checked_out_by_its_first_statement(db: Database) -> None:
    checkouts = _count_checkouts(db)
    unused = ConnectionOnDemand(db.engine)
    await unused.close()
    assert checkouts == [0]
    conn = ConnectionOnDemand(db.engine)
    assert not conn.checked_out
    assert await conn.scalar(sa.select(sa.literal(1))) == 1
    assert conn.checked_out and checkouts == [1]
    assert await conn.scalar(sa.select(sa.literal(2))) == 2
    await conn.close()
    assert checkouts == [1] and db.engine.pool.checkedout() == 0


async def test_append_only_units_ready_together_commit_in_one_statement(
    pg_db: Database,
) -> None:
    """Group commit: units ready while another's statement runs go in the next one together
    (one transaction each group: rows of one transaction share their xmin), every unit with its
    own events' positions and its own record. Units that read nothing take a connection only
    to lead their group: none while they wait."""
    store = EventStore(pg_db)
    checkouts = _count_checkouts(pg_db)
    results = await _units(store, [(f"G-{n}", 0) for n in range(40)])
    taken = checkouts[0]
    async with pg_db.engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT stream_id, position, xmin::text::bigint FROM events ORDER BY position"
        ))).all()  # fmt: skip
        keys = set((await conn.execute(sa.select(idempotency_keys.c.key))).scalars())
    assert {(e.stream_id, e.position) for r in results for e in r} == {  # type: ignore[attr-defined]
        (r.stream_id, r.position) for r in rows
    }
    assert len(rows) == 40 and keys == {f"G-{n}@0" for n in range(40)}
    transactions = len({r.xmin for r in rows})
    assert transactions < 40, "every unit committed alone"
    assert taken == transactions, "a unit took a connection it did not lead on"


async def test_a_conflict_in_a_group_fails_only_its_own_unit(pg_db: Database) -> None:
    store = EventStore(pg_db)
    await store.append("G-7", 0, _credits(1))
    results = await _units(store, [(f"G-{n}", 0) for n in range(20)])
    assert isinstance(results[7], ConcurrencyError)
    assert all(isinstance(r, list) and len(r) == 1 for n, r in enumerate(results) if n != 7)
    async with pg_db.engine.connect() as conn:
        keys = set((await conn.execute(sa.select(idempotency_keys.c.key))).scalars())
        assert len(await store.read_after(conn, 0, 100)) == 20
    assert keys == {f"G-{n}@0" for n in range(20) if n != 7}
