"""The Kafka topics of DESIGN.md §3, created explicitly (the broker never auto-creates).

How many partitions, replicas and in-sync replicas a topic gets comes from the settings
(`TopicSettings.from_settings`), for the event topics and the dead-letter topics alike, and is
checked against the cluster before anything is created: a cluster that cannot hold what is
asked (three replicas on one broker), or topics created earlier with less, is a clear error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS, dlq_topic
from shared.messaging.kafka import Cluster, new_admin

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

__all__ = [
    "ALLOCATIONS",
    "DELIVERIES",
    "EVENT_TOPICS",
    "REQUESTS",
    "TopicSettings",
    "TopicSpec",
    "dlq_topic",
]

log = logging.getLogger(__name__)


# Topics are the system of record between services: never expire anything.
INFINITE_RETENTION = {"retention.ms": "-1", "retention.bytes": "-1"}
MIN_INSYNC = "min.insync.replicas"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 3
    replication_factor: int = 1
    # With the producers' acks=all, a write is acknowledged once this many replicas have it;
    # with fewer in sync the partition refuses writes rather than risk losing one.
    min_insync_replicas: int = 1

    @property
    def configs(self) -> dict[str, str]:
        return INFINITE_RETENTION | {MIN_INSYNC: str(self.min_insync_replicas)}


@dataclass(frozen=True)
class TopicSettings:
    """What every topic a service creates gets (KAFKA_TOPIC_PARTITIONS,
    KAFKA_DLQ_PARTITIONS, KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS)."""

    partitions: int = 3
    dlq_partitions: int = 1  # dead letters are rare: one partition keeps them in order
    replication_factor: int = 1
    min_insync_replicas: int = 1

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TopicSettings:
        return cls(
            partitions=settings.kafka_topic_partitions,
            dlq_partitions=settings.kafka_dlq_partitions,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )

    def event_topics(
        self, names: Sequence[str] = (REQUESTS, ALLOCATIONS, DELIVERIES)
    ) -> list[TopicSpec]:
        return [self._spec(name, self.partitions) for name in names]

    def dead_letter_topics(self, topics: Sequence[str], consumer: str) -> list[TopicSpec]:
        return [self._spec(dlq_topic(topic, consumer), self.dlq_partitions) for topic in topics]

    def _spec(self, name: str, partitions: int) -> TopicSpec:
        return TopicSpec(name, partitions, self.replication_factor, self.min_insync_replicas)


# The catalogue's topics as a single-broker default creates them (the AsyncAPI document).
EVENT_TOPICS = tuple(TopicSettings().event_topics())


class TopicError(RuntimeError):
    pass


class TopicSettingsError(TopicError):
    """The cluster cannot satisfy the topic settings: too few brokers for the replication
    factor, or a topic that exists with fewer replicas or a lower min.insync.replicas."""


async def ensure_topics(cluster: Cluster, specs: Iterable[TopicSpec]) -> list[str]:
    """Check the topics that exist against `specs` and create those that do not; returns the
    names it created. Raises `TopicSettingsError` when the cluster cannot satisfy the specs."""
    specs = list(specs)
    admin = new_admin(cluster, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [spec for spec in specs if spec.name in existing]
        missing = [spec for spec in specs if spec.name not in existing]
        problems = await _shortfalls(admin, present)
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            problems += [
                f"topic {spec.name} needs {spec.replication_factor} replicas, the cluster has "
                f"{brokers} broker(s) up"
                for spec in missing
                if spec.replication_factor > brokers
            ]
        if problems:
            error = TopicSettingsError(
                "the Kafka cluster cannot satisfy KAFKA_REPLICATION_FACTOR / "
                "KAFKA_MIN_INSYNC_REPLICAS: " + "; ".join(problems)
            )
            log.error("%s", error)
            raise error
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    topic_configs=spec.configs,
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


async def _shortfalls(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """What existing topics lack against their specs. Fewer partitions than asked is only
    logged: keys already spread over them must stay where they are."""
    if not specs:
        return []
    described = {d["topic"]: d for d in await admin.describe_topics([s.name for s in specs])}
    min_insync = await topic_configs(admin, [s.name for s in specs], MIN_INSYNC)
    problems = []
    for spec in specs:
        partitions = described[spec.name]["partitions"]
        replicas = min((len(p["replicas"]) for p in partitions), default=0)
        if replicas < spec.replication_factor:
            problems.append(
                f"topic {spec.name} exists with {replicas} replica(s), not "
                f"{spec.replication_factor} (add replicas with kafka-reassign-partitions.sh)"
            )
        insync = int(min_insync.get(spec.name) or 1)
        if insync < spec.min_insync_replicas:
            problems.append(
                f"topic {spec.name} has {MIN_INSYNC}={insync}, not {spec.min_insync_replicas} "
                f"(kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                f"--add-config {MIN_INSYNC}={spec.min_insync_replicas})"
            )
        if len(partitions) != spec.partitions:
            log.warning("topic %s has %d partitions, the settings say %d: left as it is",
                        spec.name, len(partitions), spec.partitions)  # fmt: skip
    return problems


async def topic_configs(
    admin: AIOKafkaAdminClient, topics: Sequence[str], key: str
) -> dict[str, str]:
    """Topic -> its value of `key` (the broker's default when the topic sets none)."""
    responses: list[Any] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, {key: None}) for name in topics]
    )
    values: dict[str, str] = {}
    for response in responses:
        # (error_code, error_message, resource_type, resource_name, config_entries); each
        # entry starts with (name, value, ...).
        for _code, _message, _type, topic, entries, *_ in response.resources:
            for name, value, *_ in entries:
                if name == key:
                    values[topic] = value
    return values
