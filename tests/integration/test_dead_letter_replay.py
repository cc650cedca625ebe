"""Dead letters redriven after a fix, on both backends with the real broker: a poison message is
dead-lettered (kept, and on its dead-letter topic), the handler is fixed, the letter replayed:
its effect is there exactly once, however often or concurrently it is replayed; a replay that
fails again changes nothing and leaves the letter, with why."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import DomainError, NotFound
from shared.eventstore import EventStore, Transaction
from shared.eventstore.tables import dead_letters, processed_events
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.consumer import dead_letter_admin as admin
from shared.messaging.consumer.redrive import Outcome
from shared.messaging.topics import dlq_topic
from tests.infra import (
    KAFKA,
    POSTGRES_URL,
    create_topic,
    eventually,
    header,
    produce,
    read_topic,
    stored_event,
    unique_schema,
)
from tests.integration.test_consumer import Poison, _effects, _running, own_record
from tests.integration.worker import effects

MIGRATIONS = Path(__file__).parents[2] / "services" / "request" / "migrations"
POISON = 666


class Fixable:
    """A handler that refuses the poison amount until it is `fixed`; `slow` widens the window
    between its effect and the commit."""

    def __init__(self) -> None:
        self.fixed = False
        self.slow = 0.0

    async def __call__(self, tx: Transaction, message: Message) -> None:
        if message.event.data["amount"] == POISON and not self.fixed:
            raise Poison(f"{POISON} is not an amount this handler accepts")
        await tx.conn.execute(
            effects.insert().values(
                event_id=str(message.event.event_id), amount=message.event.data["amount"]
            )
        )
        await asyncio.sleep(self.slow)


def _consumer(db: Database, topic: str, group: str, handler: Fixable) -> EventConsumer:
    return EventConsumer(group, [topic], handler, EventStore(db), bootstrap_servers=KAFKA,
                         retry_backoff_seconds=0.01)  # fmt: skip


@contextlib.asynccontextmanager
async def _dead_lettered(
    db: Database, amounts: Sequence[int], handler: Fixable, partitions: int = 1
) -> AsyncIterator[tuple[EventConsumer, str]]:
    """A consumer that has read `amounts` (one event each) and dead-lettered the poison ones;
    running while inside."""
    topic = await create_topic(partitions=partitions)
    await produce(topic, [stored_event(f"S-{i}", 1, {"amount": a}) for i, a in enumerate(amounts)])
    async with db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)
    consumer = _consumer(db, topic, f"g{uuid.uuid4().hex[:8]}", handler)
    poisoned = sum(1 for a in amounts if a == POISON)

    async def read() -> bool:
        return consumer.applied + consumer.dead_lettered >= len(amounts)

    async with _running(consumer):
        # A consumer's first join waits for the group coordinator: on a busy machine past 30 s.
        await eventually(read, 90, "every message read")
        assert consumer.dead_lettered == poisoned
        await eventually(lambda: _published(db, poisoned), 30, "the dead letters published")
        yield consumer, topic


async def _published(db: Database, count: int) -> bool:
    async with db.engine.connect() as conn:
        published = await conn.scalar(
            sa.select(sa.func.count()).where(dead_letters.c.published_at.is_not(None))
        )
    return int(published or 0) >= count


async def _letters(db: Database) -> list[sa.Row]:  # type: ignore[type-arg]
    async with db.engine.connect() as conn:
        return list(await conn.execute(sa.select(dead_letters).order_by(*admin.ORDER)))


async def _amounts(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        return sorted((await conn.execute(sa.select(effects.c.amount))).scalars())


async def test_a_poison_message_fixed_and_replayed_has_its_effect_once(db: Database) -> None:
    handler = Fixable()
    async with _dead_lettered(db, [1, POISON, 3], handler) as (consumer, topic):
        (letter,) = await _letters(db)
        assert (letter.error_type, letter.attempts, letter.event_type) == (
            "Poison",
            3,
            "ledger.credited",
        )
        assert letter.published_at is not None, "kept once published"
        on_topic = await read_topic(dlq_topic(topic, consumer.name))
        assert [header(m, "dlq_id") for m in on_topic] == [str(letter.id)]

        # Not fixed yet: the replay fails, the letter stays with why, nothing changed.
        with pytest.raises(DomainError, match="Poison"):
            await admin.replay([consumer], admin.ReplayDeadLetters(ids=(letter.id,)), "ops")
        (still,) = await _letters(db)
        assert still.replayed_at is None and "Poison: 666" in still.replay_error
        assert await _amounts(db) == [1, 3]
        assert await consumer.processed(letter.event_id), "its copies are still skipped"

        handler.fixed = True
        first = await admin.replay([consumer], admin.ReplayDeadLetters(ids=(letter.id,)), "ops")
        assert [r.outcome for r in first.results] == [Outcome.REPLAYED]
        again = await admin.replay([consumer], admin.ReplayDeadLetters(ids=(letter.id,)), "ops")
        assert [r.outcome for r in again.results] == [Outcome.ALREADY_REPLAYED]
        assert consumer.applied == 3

        items, total = await admin.page([consumer], consumer=None, state="all", limit=50, offset=0)
        (item,) = items
        assert total == 1
        assert (item["state"], item["replayed_by"], item["replay_error"]) == (
            "replayed",
            "ops",
            None,
        )
        assert await admin.summary([consumer]) == [
            {"consumer": consumer.name, "pending": 0, "replayed": 1, "errors": []}
        ]
        shown = await admin.letter([consumer], letter.id)
        assert shown["envelope"]["data"] == {"amount": POISON}
        assert shown["envelope"]["event_id"] == str(letter.event_id)
    assert await _amounts(db) == [1, 3, POISON]
    assert await _effects(db) == (3, 3)
    assert await consumer.processed(letter.event_id)
    # The copy on the topic, delivered again, is still skipped (it is processed).
    on_topic = await read_topic(dlq_topic(topic, consumer.name))
    assert len(on_topic) == 1, "a replay publishes nothing again"


async def test_concurrent_replays_by_two_copies_apply_it_once(db: Database) -> None:
    handler = Fixable()
    async with _dead_lettered(db, [POISON], handler) as (consumer, _topic):
        (letter,) = await _letters(db)
        handler.fixed, handler.slow = True, 0.3
        # Another copy of the service: its own consumer object and lock, the same tables.
        other = _consumer(db, consumer.topics[0], consumer.name, handler)
        results = await asyncio.gather(
            consumer.replay(letter.id, "ops-a"), other.replay(letter.id, "ops-b")
        )
        outcomes = sorted(str(r.outcome) for r in results if r is not None)
        assert outcomes == [Outcome.ALREADY_REPLAYED, Outcome.REPLAYED]
    assert await _effects(db) == (1, 1)


async def test_a_consumers_letters_are_replayed_in_order_and_failures_stay(db: Database) -> None:
    """A batch handler whose own rows record what it applied (as the projection's): replay all
    of a consumer, a page at a time; the one still failing stays, the others apply once."""
    topic = await create_topic(partitions=1)
    amounts = [1, POISON, 2, POISON + 1, POISON, 3]
    await produce(topic, [stored_event(f"S-{i}", 1, {"amount": a}) for i, a in enumerate(amounts)])
    async with db.engine.begin() as conn:
        await conn.run_sync(own_record.metadata.create_all)
    refused = {POISON, POISON + 1}

    async def batch(tx: Transaction, messages: Sequence[Message]) -> None:
        for message in messages:
            if message.event.data["amount"] in refused:
                raise Poison("not accepted")
        await tx.conn.execute(
            own_record.insert(),
            [{"event_id": m.event.event_id, "amount": m.event.data["amount"]} for m in messages],
        )

    consumer = EventConsumer(
        f"g{uuid.uuid4().hex[:8]}", [topic], None, EventStore(db), bootstrap_servers=KAFKA,
        retry_backoff_seconds=0.01, batch_handler=batch, recorded_by_handler=own_record.c.event_id,
    )  # fmt: skip
    async with _running(consumer):

        async def read() -> bool:
            return consumer.dead_lettered >= 3 and consumer.applied >= 3

        await eventually(read, 90, "every message read")
        refused = {POISON + 1}  # the fix covers one of the two errors
        with pytest.raises(NotFound):
            await admin.replay([consumer], admin.ReplayDeadLetters(consumer="nobody"), "ops")
        first = await admin.replay(
            [consumer], admin.ReplayDeadLetters(consumer=consumer.name, limit=2), "ops"
        )
        assert [r.outcome for r in first.results] == [Outcome.REPLAYED, Outcome.FAILED]
        assert first.remaining == 1
        rest = await admin.replay(
            [consumer], admin.ReplayDeadLetters(consumer=consumer.name, skip=1), "ops"
        )
        assert [r.outcome for r in rest.results] == [Outcome.REPLAYED]
        assert rest.remaining == 0
        # By original offsets: only the one still failing is left in that range.
        ranged = await admin.replay(
            [consumer],
            admin.ReplayDeadLetters(consumer=consumer.name, from_offset=0, to_offset=5),
            "ops",
        )
        assert [r.outcome for r in ranged.results] == [Outcome.FAILED]
        assert "not accepted" in (ranged.results[0].error or "")
    async with db.engine.connect() as conn:
        applied = sorted((await conn.execute(sa.select(own_record.c.amount))).scalars())
        tracked = (await conn.execute(sa.select(processed_events.c.event_id))).scalars().all()
    assert applied == [1, 2, 3, POISON, POISON]
    pending = [row for row in await _letters(db) if row.replayed_at is None]
    assert [row.original_offset for row in pending] == [3]
    assert tracked == [pending[0].event_id], "the handler's own rows record the replayed ones"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_upgrade_keeps_held_letters_and_what_failed(backend: str, tmp_path: Path) -> None:
    """A dead letter held (not published) under eventstore_v2 is kept by eventstore_v3, which
    takes what failed from its headers."""
    url = f"sqlite+aiosqlite:///{tmp_path}/up.db" if backend == "sqlite" else POSTGRES_URL
    db = Database(url, unique_schema())
    try:
        await upgrade(db, MIGRATIONS, "0003")
        event_id = uuid.uuid4()
        headers = [
            ("ce_id", str(event_id)),
            ("ce_type", "ledger.credited"),
            ("dlq_error_type", "Poison"),
            ("dlq_error", "boom"),
            ("dlq_attempts", "3"),
        ]
        # The table as eventstore_v2 made it.
        outbox = sa.table(
            "dead_letter_outbox",
            *(dead_letters.c[name]._copy() for name in ("id", "consumer", "topic",
              "original_topic", "original_partition", "original_offset", "headers", "created_at")),
        )  # fmt: skip
        letter = uuid.uuid4()
        async with db.engine.begin() as conn:
            await conn.execute(
                outbox.insert().values(
                    id=letter, consumer="c", topic="t.dlq.c", original_topic="t",
                    original_partition=0, original_offset=7, created_at=datetime.now(UTC),
                    headers=[[k, base64.b64encode(v.encode()).decode()] for k, v in headers],
                )
            )  # fmt: skip
        await upgrade(db, MIGRATIONS)
        (row,) = await _letters(db)
        assert (row.id, row.event_id, row.event_type) == (letter, event_id, "ledger.credited")
        assert (row.error_type, row.error, row.attempts) == ("Poison", "boom", 3)
        assert row.published_at is None and row.replayed_at is None
    finally:
        await db.drop_schema()
        await db.dispose()
