"""Event-store append: commands/s with 1 and 16 concurrent writers on PostgreSQL, beside the
`eventsourcing` library (PostgreSQL recorder) doing the same appends in the same run.

One command = load nothing, append one event to a stream at its expected version (a new stream
per command for the first event, then follow-up events), committed in its own transaction —
the work an HTTP command does in the store. The `eventsourcing` side saves one new event of an
aggregate per call (`Application.save`), its writers in threads since it has no asyncio API.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from sqlalchemy.engine import make_url

from bench.report import Result
from shared.db import Database
from shared.db.migrate import upgrade
from shared.domain import Metadata
from shared.eventstore import EventStore
from tests.conftest import MIGRATIONS
from tests.infra import POSTGRES_URL
from tests.sample_domain import Credited, registry


class Account(Aggregate):
    """The same aggregate for the `eventsourcing` side."""

    @event("Opened")
    def __init__(self) -> None:
        self.balance = 0

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


COMMANDS = int(os.environ.get("BENCH_STORE_COMMANDS", "4000"))
META = Metadata(actor="bench")


async def _ours(writers: int) -> float:
    # One more than the writers: a migration holds its lock on one connection while it makes
    # the schema on another.
    db = Database(POSTGRES_URL, f"bench_store_{uuid.uuid4().hex[:6]}", pool_size=writers + 1)
    await upgrade(db, MIGRATIONS)
    store = EventStore(db)
    per_writer = COMMANDS // writers

    async def writer(w: int) -> None:
        stream = f"S-{w}-{uuid.uuid4().hex[:6]}"
        for version in range(per_writer):
            await store.append(stream, version, [registry.encode(Credited(amount=version), META)])

    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return per_writer * writers / (time.perf_counter() - started)
    finally:
        await db.drop_schema()
        await db.dispose()


def _eventsourcing(writers: int) -> float:
    url = make_url(POSTGRES_URL)
    schema = f"bench_es_{uuid.uuid4().hex[:6]}"
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.database or "aidline",
        "POSTGRES_HOST": url.host or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "aidline",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_POOL_SIZE": str(writers),
        "CREATE_TABLE": "y",
    }
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        autocommit=True,
    ) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    app: Application[Any] = Application(env=env)
    per_writer = COMMANDS // writers

    def writer() -> None:
        account = Account()  # the "opened" event counts as this writer's first command
        app.save(account)
        for i in range(1, per_writer):
            account.credit(i)
            app.save(account)

    try:
        threads = [threading.Thread(target=writer) for _ in range(writers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return per_writer * writers / (time.perf_counter() - started)
    finally:
        app.close()
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def run() -> list[Result]:
    results = []
    for writers in (1, 16):
        baseline = await asyncio.to_thread(_eventsourcing, writers)
        ours = await _ours(writers)
        results.append(
            Result(
                f"event-store append, {writers} writer{'s' if writers > 1 else ''}",
                ours,
                "commands/s",
                "eventsourcing 9.5 (PostgreSQL)",
                baseline,
                target=">= 1.5x eventsourcing",
                met=ours >= 1.5 * baseline,
                notes=f"{COMMANDS:,} commands",
            )
        )
    return results
