"""Every Kafka client of a service (topic creation, the relay's producer, a consumer and its
dead-letter producer) against a broker that takes only TLS with client certificates, or SCRAM
over TLS: with `KafkaConnection` settings it works; with a stranger's certificate or a wrong
password it is refused. The certificates and the SCRAM user are made here."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.db import Database
from shared.domain import Metadata
from shared.eventstore import EventStore, Transaction
from shared.messaging.consumer import EventConsumer, Message
from shared.messaging.kafka import KafkaConnection, new_producer
from shared.messaging.relay import Relay
from shared.messaging.topics import TopicSettings, dlq_topic, ensure_topics
from shared.settings import ServiceSettings
from tests.brokers import SECURE_PORT, LocalKafka
from tests.infra import eventually, read_topic
from tests.sample_domain import Credited, registry
from tests.tls import Pki, make_pki

USER, PASSWORD = "aidline-relay", f"pw-{uuid.uuid4().hex}"
TLS_PORT, SASL_PORT = SECURE_PORT + 2, SECURE_PORT + 3
_META = Metadata(actor="tester")


def _broker_config(pki: Pki) -> str:
    listeners = {
        "PLAINTEXT": SECURE_PORT,  # kafka.sh waits for this one; inter-broker traffic
        "CONTROLLER": SECURE_PORT + 1,
        "SSL": TLS_PORT,
        "SASL_SSL": SASL_PORT,
    }
    return "\n".join(
        [
            "listeners=" + ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
            "advertised.listeners="
            + ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items() if n != "CONTROLLER"),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "SSL:SSL,SASL_SSL:SASL_SSL",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={pki.broker}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={pki.ca}",
            # The TLS listener admits only clients with a certificate of our CA.
            "listener.name.ssl.ssl.client.auth=required",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "",
        ]
    )


@pytest.fixture(scope="module")
async def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pki]:
    home = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(home / "pki")
    config = home / "secure.properties"
    config.write_text(_broker_config(pki))
    # The SCRAM credential is written into the metadata log when the storage is formatted.
    broker = LocalKafka(
        home, SECURE_PORT, extra_config=config,
        format_args=f"--add-scram SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
    )  # fmt: skip
    await broker.up()
    try:
        yield pki
    finally:
        await broker.down()


def _tls(pki: Pki, cert: Path | None = None, key: Path | None = None) -> KafkaConnection:
    return KafkaConnection(
        f"127.0.0.1:{TLS_PORT}",
        client_id="aidline-test-tls",
        security_protocol="SSL",
        ssl_cafile=str(pki.ca),
        ssl_certfile=str(cert or pki.client_cert),
        ssl_keyfile=str(key or pki.client_key),
    )


def _scram(pki: Pki, password: str = PASSWORD) -> KafkaConnection:
    return KafkaConnection(
        f"127.0.0.1:{SASL_PORT}",
        client_id="aidline-test-scram",
        security_protocol="SASL_SSL",
        ssl_cafile=str(pki.ca),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=password,
    )


@contextlib.asynccontextmanager
async def _running(*tasks: asyncio.Task[None]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _round_trip(kafka: KafkaConnection, db: Database) -> None:
    """Topics created, events published by the relay and applied by a consumer, a poison
    message dead-lettered: every kind of client the services run, over `kafka`."""
    topic = f"secure.{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:8]}"
    settings = TopicSettings(partitions=2)
    assert await ensure_topics(kafka, settings.event_topics([topic])) == [topic]
    store = EventStore(db)
    applied: list[str] = []

    async def handler(tx: Transaction, message: Message) -> None:
        applied.append(str(message.event.event_id))

    relay = Relay(store, topic=topic, source="/aidline/test", bootstrap_servers=kafka)
    consumer = EventConsumer(group, [topic], handler, store, bootstrap_servers=kafka,
                             retry_backoff_seconds=0.01, topic_settings=settings)  # fmt: skip
    for i in range(10):
        await store.append(f"S-{i}", 0, [registry.encode(Credited(amount=i), _META)])
    async with _running(asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())):

        async def all_applied() -> bool:
            return len(set(applied)) == 10

        await eventually(all_applied, 60, "the consumer to apply what the relay published")
        producer = new_producer(kafka)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"poison", key=b"S-0")
        finally:
            await producer.stop()

        async def dead_lettered() -> bool:
            return consumer.dead_lettered == 1

        await eventually(dead_lettered, 60, "the poison message to be dead-lettered")

    dead = await read_topic(dlq_topic(topic, group), cluster=kafka)
    assert [m.value for m in dead] == [b"poison"], "dead-lettered over the same connection"


async def test_mutual_tls_carries_every_client(secure_broker: Pki, pg_db: Database) -> None:
    await _round_trip(_tls(secure_broker), pg_db)


async def test_scram_over_tls_carries_every_client(secure_broker: Pki, pg_db: Database) -> None:
    await _round_trip(_scram(secure_broker), pg_db)


async def test_a_certificate_of_another_ca_is_refused(secure_broker: Pki) -> None:
    stranger = _tls(secure_broker, secure_broker.stranger_cert, secure_broker.stranger_key)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(ensure_topics(stranger, []), 30)


async def test_a_wrong_scram_password_is_refused(
    secure_broker: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(ensure_topics(_scram(secure_broker, "wrong"), []), 30)
    assert "SaslAuthenticationFailed" in caplog.text, "refused for its password, not its address"


def test_the_settings_build_the_connection(secure_broker: Pki) -> None:
    settings = ServiceSettings(
        _env_file=None,
        service_name="delivery",
        kafka_bootstrap_servers=f"127.0.0.1:{SASL_PORT}",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=secure_broker.ca,
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
    )
    kafka = KafkaConnection.from_settings(settings)
    assert kafka == replace(_scram(secure_broker), client_id=kafka.client_id)
    assert kafka.client_id.startswith("aidline-delivery-"), "one client.id per instance"
