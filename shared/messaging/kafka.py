"""How every Kafka client of a service connects: one place builds aiokafka's keyword arguments.

The relay's producer, each consumer (and its dead-letter producer), topic creation and the
readiness probe all take a `KafkaConnection`: the cluster's addresses, TLS and SASL settings and
the instance's `client.id`, so a broker that requires TLS or SCRAM gets them from every client.
A bare address string still works: plaintext, the default client id (tests, benchmarks).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaConnection:
    """The cluster and how to reach it. Files are paths (PEM); a password is never logged
    (`repr` leaves it out)."""

    bootstrap_servers: str
    client_id: str = "aidline"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    # TLS: the CA that signed the brokers' certificates (None: the system's), and this
    # client's certificate and key when the brokers require clients to prove who they are.
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = None
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None

    def __repr__(self) -> str:
        return (
            f"KafkaConnection({self.bootstrap_servers!r}, client_id={self.client_id!r}, "
            f"security_protocol={self.security_protocol!r}, user={self.sasl_username!r})"
        )

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    def options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client (producer, consumer, admin) takes."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.tls:
            # aiokafka wants an SSLContext; its helper verifies the broker's certificate and
            # host name (the address in bootstrap_servers must be in the certificate).
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile,
                certfile=self.ssl_certfile,
                keyfile=self.ssl_keyfile,
                password=self.ssl_key_password,
            )
        if self.sasl:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        return options

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> KafkaConnection:
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=settings.kafka_client_id or instance_client_id(settings.service_name),
            security_protocol=settings.kafka_security_protocol,
            ssl_cafile=_path(settings.kafka_ssl_cafile),
            ssl_certfile=_path(settings.kafka_ssl_certfile),
            ssl_keyfile=_path(settings.kafka_ssl_keyfile),
            ssl_key_password=_secret(settings.kafka_ssl_key_password),
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=_secret(settings.kafka_sasl_password),
        )


def instance_client_id(service: str) -> str:
    """`aidline-<service>-<host>-<pid>`: the brokers' logs, quotas and group listings tell
    the instances of a service apart."""
    return f"aidline-{service}-{socket.gethostname()}-{os.getpid()}"


def _path(value: object | None) -> str | None:
    return None if value is None else str(value)


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


Cluster = KafkaConnection | str


def connection(cluster: Cluster) -> KafkaConnection:
    """A `KafkaConnection` as is; a bare address string as a plaintext connection to it."""
    return cluster if isinstance(cluster, KafkaConnection) else KafkaConnection(cluster)


def new_producer(cluster: Cluster, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): retries never duplicate or reorder within a partition."""
    options: dict[str, Any] = connection(cluster).options() | {
        "enable_idempotence": True,
        # Acknowledged only once every in-sync replica has the record (and at least the
        # topic's min.insync.replicas): a broker lost after the ack loses nothing.
        "acks": "all",
        "linger_ms": 0,  # latency first; batches still form whenever the relay has a backlog
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def new_consumer(cluster: Cluster, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **(connection(cluster).options() | options))


def new_admin(cluster: Cluster, **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**(connection(cluster).options() | options))


def new_client(cluster: Cluster, **options: Any) -> AIOKafkaClient:
    return AIOKafkaClient(**(connection(cluster).options() | options))
