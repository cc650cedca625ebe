"""A relay or a consumer in its own process, so tests can kill -9 it.

    python -m tests.integration.worker relay    <database_url> <schema> <topic> <batch_size>
    python -m tests.integration.worker consumer <database_url> <schema> <topic> <group> <slow_ms>

The consumer's effect is one row per application in `effects`, with no unique constraint, so a
double effect would show as two rows for one event.
"""

from __future__ import annotations

import asyncio
import sys

import sqlalchemy as sa

from shared.db import Database
from shared.eventstore import EventStore, Transaction
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.relay import Relay
from tests.infra import KAFKA

effects = sa.Table(
    "effects",
    sa.MetaData(),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
)


async def run_relay(url: str, schema: str, topic: str, batch_size: int) -> None:
    store = EventStore(Database(url, schema))
    # A checkpoint after every acknowledged batch: the test kills the relay between two.
    relay = Relay(
        store,
        topic=topic,
        source="/aidline/test",
        bootstrap_servers=KAFKA,
        batch_size=batch_size,
        checkpoint_seconds=0.0,
    )
    print("relay started", flush=True)
    await relay.run()


async def run_consumer(url: str, schema: str, topic: str, group: str, slow_ms: int) -> None:
    db = Database(url, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(effects.metadata.create_all)

    async def handler(tx: Transaction, message: Message) -> None:
        await tx.conn.execute(
            effects.insert().values(
                event_id=str(message.event.event_id), amount=message.event.data["amount"]
            )
        )
        await asyncio.sleep(slow_ms / 1000)  # widen the window between effect and commit

    # Small polls, so that effects commit in several steps and a kill can land between them.
    # A static member: the consumer started after a kill takes the partitions at once instead
    # of waiting out the dead one's session (10 s).
    consumer = EventConsumer(
        group,
        [topic],
        handler,
        EventStore(db),
        bootstrap_servers=KAFKA,
        batch_size=50,
        group_instance_id="worker",
    )
    print("consumer started", flush=True)
    await consumer.run()


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "relay":
        asyncio.run(run_relay(args[0], args[1], args[2], int(args[3])))
    else:
        asyncio.run(run_consumer(args[0], args[1], args[2], args[3], int(args[4])))
