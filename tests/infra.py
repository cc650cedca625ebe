"""Where the tests find the real Kafka and PostgreSQL (started by `make test` / `make infra-up`).

Tests that need them fail with a clear message when they are missing; they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import RecordMetadata
from sqlalchemy.engine import make_url

from shared.db.migrate import upgrade
from shared.domain import Metadata, StoredEvent
from shared.eventstore.tables import consumer_offsets
from shared.messaging import envelope
from shared.messaging.kafka import Cluster, new_consumer, new_producer
from shared.runtime import ServiceRuntime

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
SERVER_URL = os.environ.get(
    "DATABASE_URL", "postgresql+asyncpg://aidline:aidline@127.0.0.1:5433/aidline"
)
# Under pytest-xdist (`make test`, TEST_WORKERS > 0) each worker has a database of its own on
# the server (`aidline_gw0`, ...; created by tests/conftest.py): what one worker's tests read
# server-wide (pg_stat_activity, pg_locks) then names only its own, filtered by database.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
POSTGRES_URL = (
    str(
        make_url(SERVER_URL).set(database=f"aidline_{WORKER}").render_as_string(hide_password=False)
    )
    if WORKER
    else SERVER_URL
)
HOW_TO_START = "start them with `make infra-up` (or run the suite with `make test`)"


async def ensure_worker_database() -> None:
    """Create this xdist worker's database if it is not there (kept between runs, as the
    server's own `aidline` database is). Best effort: without PostgreSQL the tests that need
    it fail, each with the reason, as they do without a worker."""
    if not WORKER:
        return
    server, name = make_url(SERVER_URL), make_url(POSTGRES_URL).database
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(
                host=server.host,
                port=server.port,
                user=server.username,
                password=server.password,
                database=server.database,
            ),
            10,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # another run made it
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def require_kafka() -> str:
    client = AIOKafkaClient(bootstrap_servers=KAFKA, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(client.bootstrap(), 10)
    except Exception as exc:
        pytest.fail(f"Kafka is not reachable at {KAFKA} ({exc!r}); {HOW_TO_START}", pytrace=False)
    finally:
        await client.close()
    return KAFKA


async def create_topic(
    partitions: int = 3, prefix: str = "test", configs: dict[str, str] | None = None
) -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        await admin.close()
    return name


async def alter_topic(name: str, configs: dict[str, str]) -> None:
    """Set a topic's configuration, as an operator would (`kafka-configs.sh --alter`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        (response,) = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs)]
        )
        assert all(error == 0 for error, *_ in response.resources), response
    finally:
        await admin.close()


def unique_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


async def end_offsets(topic: str) -> dict[int, int]:
    """Partition -> end offset now: pass to `read_topic(since=...)` to read only what follows."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)  # as read_topic: stop() wants an assignment
        return {
            tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()
        }
    finally:
        await consumer.stop()


async def start_at_the_end(runtime: ServiceRuntime, migrations: Path) -> None:
    """Migrate the service and store today's end offsets of its consumers' topics as their
    positions (a consumer seeks to stored offsets): the shared topics hold every other test's
    events, and a consumer reads only what comes next. Call before `runtime.start()`."""
    await upgrade(runtime.db, migrations)
    async with runtime.db.engine.begin() as conn:
        for consumer in runtime.consumers:
            for topic in consumer.topics:
                for partition, offset in (await end_offsets(topic)).items():
                    await conn.execute(
                        consumer_offsets.insert().values(
                            consumer=consumer.name,
                            topic=topic,
                            partition=partition,
                            next_offset=offset,
                            updated_at=datetime.now(UTC),
                        )
                    )


async def read_topic(
    topic: str, since: dict[int, int] | None = None, cluster: Cluster = KAFKA
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message currently in `topic`, read from offset 0 (or the offsets in `since`, for a
    shared topic) up to the end offsets."""
    consumer = new_consumer(cluster, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # a new topic may not be cached yet
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            if since and tp.partition in since:
                consumer.seek(tp, since[tp.partition])
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < end[tp] for tp in partitions]):
            batch = await consumer.getmany(timeout_ms=1000)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    """A header's value, "" when absent: shared topics also carry other tests' messages,
    poison ones without headers among them, which filters must simply not match."""
    return next((value.decode() for key, value in record.headers if key == name), "")


async def eventually(
    predicate: Callable[[], Awaitable[object]], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Await a condition (anything true; polling gently) instead of sleeping a fixed time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        await asyncio.sleep(0.05)


def stored_event(stream_id: str, version: int, data: dict[str, Any], **kw: Any) -> StoredEvent:
    return StoredEvent(
        position=kw.get("position", version),
        stream_id=stream_id,
        stream_version=version,
        event_id=kw.get("event_id", uuid.uuid4()),
        event_type=kw.get("event_type", "ledger.credited"),
        schema_version=1,
        data=data,
        meta=kw.get("meta", Metadata(actor="tester")),
        recorded_at=datetime.now(UTC),
    )


async def produce(topic: str, items: Sequence[StoredEvent | bytes]) -> list[RecordMetadata]:
    """Publish CloudEvents (or raw bytes, for malformed messages) in order, keyed by stream;
    returns where each landed (partition, offset)."""
    producer = new_producer(KAFKA)
    await producer.start()
    landed = []
    try:
        for item in items:
            if isinstance(item, bytes):
                landed.append(await producer.send_and_wait(topic, value=item, key=b"raw"))
            else:
                key, value, headers = envelope.encode(item, "/aidline/test")
                landed.append(
                    await producer.send_and_wait(topic, value=value, key=key, headers=headers)
                )
    finally:
        await producer.stop()
    return landed


def wait_for_tool(binary: Path, timeout: float = 1200.0) -> None:
    """Wait for a tool deploy/local/test-tools.sh builds in the background (helm: build.pid,
    build.log and, once ended, build.status beside it); fails the test with the build's log
    when the build failed, or when nothing builds it and it is missing."""
    folder = binary.parent
    deadline = time.monotonic() + timeout
    while not os.access(binary, os.X_OK):
        status = folder / "build.status"
        if status.exists() and status.read_text().strip() != "0":
            log = (folder / "build.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"building {binary} failed:\n{log}", pytrace=False)
        pid = (folder / "build.pid").read_text().strip() if (folder / "build.pid").exists() else ""
        building = pid.isdigit() and Path(f"/proc/{pid}").exists() and not status.exists()
        if not building:
            pytest.fail(f"{binary} is missing; run deploy/local/test-tools.sh", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{binary} still building after {timeout:.0f}s", pytrace=False)
        time.sleep(2)
