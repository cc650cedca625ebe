"""Topic settings against the real (one-broker) test Kafka: topics are created as configured,
and what the cluster cannot satisfy is a clear error before anything is created — also for a
service starting with them, whose topic task then says so in /readyz."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.request.app import build_runtime
from services.request.settings import RequestSettings
from shared.messaging.kafka import new_admin
from shared.messaging.topics import TopicSettings, TopicSettingsError, TopicSpec, ensure_topics
from tests.infra import eventually


def _name() -> str:
    return f"test.topics.{uuid.uuid4().hex[:10]}"


async def _describe(kafka: str, topic: str) -> tuple[int, int, dict[str, str]]:
    """(partitions, replicas of each, the configs asked about) of an existing topic."""
    admin = new_admin(kafka)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    partitions = described["partitions"]
    configs = {name: value for name, value, *_ in response.resources[0][4]}
    return len(partitions), min(len(p["replicas"]) for p in partitions), configs


async def _topics(kafka: str) -> set[str]:
    admin = new_admin(kafka)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_topics_are_created_as_configured(kafka: str) -> None:
    name = _name()
    settings = TopicSettings(partitions=5, dlq_partitions=2)
    specs = [*settings.event_topics([name]), *settings.dead_letter_topics([name], "g")]
    assert await ensure_topics(kafka, specs) == [name, f"{name}.dlq.g"]
    partitions, replicas, configs = await _describe(kafka, name)
    assert (partitions, replicas) == (5, 1)
    assert configs["min.insync.replicas"] == "1"
    assert (configs["retention.ms"], configs["retention.bytes"]) == ("-1", "-1")
    assert (await _describe(kafka, f"{name}.dlq.g"))[0] == 2
    assert await ensure_topics(kafka, specs) == [], "created once"


async def test_more_replicas_than_brokers_is_refused_before_creating(kafka: str) -> None:
    name = _name()
    with pytest.raises(TopicSettingsError) as raised:
        await ensure_topics(kafka, [TopicSpec(name, 3, replication_factor=3)])
    assert f"topic {name} needs 3 replicas, the cluster has 1 broker(s) up" in str(raised.value)
    assert name not in await _topics(kafka), "nothing created"


async def test_an_existing_topic_with_less_is_refused(kafka: str) -> None:
    name = _name()
    await ensure_topics(kafka, [TopicSpec(name, 1)])

    async def listed() -> bool:  # the broker's metadata shows a new topic a moment later
        return name in await _topics(kafka)

    await eventually(listed, 10, "the new topic in the metadata")
    with pytest.raises(TopicSettingsError) as raised:
        await ensure_topics(kafka, [TopicSpec(name, 1, min_insync_replicas=2)])
    assert f"topic {name} has min.insync.replicas=1, not 2" in str(raised.value)
    assert "--add-config min.insync.replicas=2" in str(raised.value), "says how to fix it"


async def test_a_service_reports_topic_settings_the_cluster_cannot_satisfy(
    kafka: str, tmp_path: Path
) -> None:
    """It still starts and takes commands (Kafka may gain brokers); /readyz names the error."""
    settings = RequestSettings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/request.db",
        kafka_bootstrap_servers=kafka,
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
        kafka_retry_max_seconds=0.5,
        consumers_enabled=False,
    )
    runtime = build_runtime(settings)
    await runtime.start()
    try:

        async def refused() -> bool:
            return runtime.tasks["topics"].last_error == "TopicSettingsError"

        await eventually(refused, 30, "the topic task to report the settings error")
        checks = await runtime.readiness()
        assert checks["database"]["ok"] and not checks["task:topics"]["ok"]
        assert checks["relay"]["state"] == "starting", "nothing published to half-made topics"
    finally:
        await runtime.stop()
