"""The Kafka topics of DESIGN.md §3, created explicitly (the broker never auto-creates)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS, dlq_topic

__all__ = ["ALLOCATIONS", "DELIVERIES", "EVENT_TOPICS", "REQUESTS", "TopicSpec", "dlq_topic"]

log = logging.getLogger(__name__)


# Topics are the system of record between services: never expire anything.
INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3


EVENT_TOPICS = (TopicSpec(REQUESTS), TopicSpec(ALLOCATIONS), TopicSpec(DELIVERIES))


class TopicError(RuntimeError):
    pass


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=1,
                    topic_configs=INFINITE_RETENTION,
                )
                for spec in missing
            ]
        )
        for name, code, *rest in response.topic_errors:
            # 36 = TOPIC_ALREADY_EXISTS: another process won the race, which is fine.
            if code not in (0, 36):
                raise TopicError(f"creating topic {name} failed with error code {code}: {rest}")
        log.info("created topics %s", [spec.name for spec in missing])
        return [spec.name for spec in missing]
    finally:
        await admin.close()
