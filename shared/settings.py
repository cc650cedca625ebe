"""Settings every service shares; each service subclasses this with its own prefix and port."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import AnyHttpUrl, Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth.tokens import AUDIENCE, DEV_SECRET, ISSUER, MIN_SECRET_BYTES

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///.aidline/data/aidline.db"


class ServiceSettings(BaseSettings):
    """One pydantic-settings class per service, read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "aidline"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # One URL for the whole deployment; each service keeps its tables in its own schema
    # (PostgreSQL) or its own file (SQLite), so no service can touch another's tables.
    database_url: str = DEFAULT_SQLITE_URL
    # What sits between the services and PostgreSQL, if a pooler does (docs/scaling.md,
    # "Connection poolers"): `session` (none, or PgBouncer's pool_mode = session) works;
    # `transaction` is refused at start, naming why.
    database_pool_mode: Literal["session", "transaction"] = "session"
    # Connections each instance keeps to its schema for requests and consumers (the relay's
    # leader and the projection's listeners take one more each, its generation five): size
    # PostgreSQL's max_connections for the instances (docs/scaling.md).
    database_pool_size: int = Field(default=20, ge=2, le=500)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # While the broker is away, topic creation, the relay and the consumers try again after
    # a pause that doubles from 0.5 s up to this (with jitter): the longest a return waits.
    kafka_retry_max_seconds: float = Field(default=10.0, ge=0.5, le=300)
    # The most bytes one event may take on Kafka (a record batch of its own): the broker's
    # `message.max.bytes` and each topic's `max.message.bytes` must take at least this much
    # (Kafka's default, 1048588, does: deploy/kafka/server.properties). The store refuses an
    # event above it (413) and the relay's producer sends nothing larger.
    kafka_max_message_bytes: int = Field(default=1_048_576, ge=65_536, le=100 * 1024 * 1024)
    # Every topic the service creates (its events' and its consumers' dead-letter topics):
    # checked against the cluster at start (docs/scaling.md, "Topics on a cluster"). On a
    # cluster: replication factor 3 and min.insync.replicas 2, so a broker can be lost
    # without losing an acknowledged event or refusing writes.
    kafka_topic_partitions: int = Field(default=3, ge=1, le=10_000)
    kafka_dlq_partitions: int = Field(default=1, ge=1, le=10_000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=32)
    kafka_min_insync_replicas: int = Field(default=1, ge=1, le=32)
    # How every producer, consumer and admin client connects (shared.messaging.kafka).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_ssl_cafile: FilePath | None = None  # PEM; none: the system's CAs
    kafka_ssl_certfile: FilePath | None = None  # PEM client certificate (mutual TLS)
    kafka_ssl_keyfile: FilePath | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The brokers see this instance as it (logs, quotas, consumer groups); default
    # `aidline-<service>-<host>-<pid>`, one per instance.
    kafka_client_id: str | None = Field(default=None, min_length=1, max_length=200)
    # Static group membership (Kafka's KIP-345): the consumers join their groups as this
    # instance, and a restart under the same id (a StatefulSet's pod name) takes its partitions
    # back at once, where a new member waits out the old one's session timeout (10 s) first.
    # One process per id; unset: dynamic membership (docs/scaling.md).
    kafka_group_instance_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$"
    )
    environment: str = Field(default="development", pattern="^(development|test|production)$")
    migrate_on_start: bool = True
    relay_enabled: bool = True
    consumers_enabled: bool = True
    relay_batch_size: int = Field(default=2000, ge=1, le=10_000)
    # The relay is reported not ok when the oldest event it has not published is older.
    relay_stall_seconds: float = Field(default=60.0, gt=0)
    # Prepended to consumer group names, so parallel test runs on one broker stay apart.
    consumer_group_prefix: str = ""
    # Where a consumer group that has applied nothing yet starts: `earliest` (every service:
    # it must see the whole history) or `latest` (attach to live traffic only: tests, demos).
    consumer_start_at: Literal["earliest", "latest"] = "earliest"
    consumer_max_attempts: int = Field(default=3, ge=1, le=100)
    # A consumer that has not polled for this long is reported as not ready.
    consumer_stall_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    # json | text | auto (text in development, JSON otherwise); see docs/operations.md.
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")
    # Bearer tokens: an HS256 secret (development), or an RS256 PEM public key file or JWKS
    # file (deployments, where an identity provider signs). A key file wins over the secret.
    jwt_secret: str = DEV_SECRET
    jwt_public_key_file: FilePath | None = None
    jwt_jwks_file: FilePath | None = None
    # The identity provider's JWKS endpoint (RS256): fetched when first needed, cached for
    # JWT_JWKS_CACHE_SECONDS, fetched again for a token naming a key it lacks (at most once per
    # JWT_JWKS_COOLDOWN_SECONDS). https outside development.
    jwt_jwks_url: AnyHttpUrl | None = None
    jwt_jwks_cache_seconds: float = Field(default=300, gt=0, le=86_400)
    jwt_jwks_cooldown_seconds: float = Field(default=10, ge=0, le=3600)
    jwt_issuer: str = Field(default=ISSUER, min_length=1)
    jwt_audience: str = Field(default=AUDIENCE, min_length=1)
    # Clock skew tolerated on exp/nbf/iat between the token issuer and this host.
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=300)
    # With the development secret (anyone can mint a token of any role with it) a service
    # listens on loopback only, unless this is set on purpose (Docker Compose does, and
    # publishes the port on 127.0.0.1 only).
    allow_development_on_network: bool = False
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Token bucket per caller and route on the endpoints that opt in (imports, batches).
    rate_limit_enabled: bool = True
    rate_limit_per_minute: float = Field(default=30.0, gt=0)
    rate_limit_burst: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _session_pooling_only(self) -> ServiceSettings:
        if self.database_pool_mode == "transaction":
            raise ValueError(
                "DATABASE_POOL_MODE=transaction (PgBouncer in transaction mode) is not supported: "
                "the relay's leadership is a session advisory lock and its wake-up a LISTEN, and "
                "a transaction-mode pool hands the server connection to other clients between "
                "transactions (two relays would publish at once, or none be woken; the "
                "driver's prepared statements fail too). Point DATABASE_URL at PostgreSQL "
                "itself or at a pool in session mode (pool_mode = session)"
            )
        return self

    @model_validator(mode="after")
    def _kafka_settings_agree(self) -> ServiceSettings:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                f"KAFKA_MIN_INSYNC_REPLICAS={self.kafka_min_insync_replicas} is more than "
                f"KAFKA_REPLICATION_FACTOR={self.kafka_replication_factor}: no write could "
                "ever be acknowledged"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("set KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE together")
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        if not tls and (self.kafka_ssl_cafile or self.kafka_ssl_certfile):
            raise ValueError(
                f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL is "
                f"{self.kafka_security_protocol}: use SSL or SASL_SSL"
            )
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _no_development_secret_outside_development(self) -> ServiceSettings:
        keys = [name for name, value in (("JWT_PUBLIC_KEY_FILE", self.jwt_public_key_file),
                                         ("JWT_JWKS_FILE", self.jwt_jwks_file),
                                         ("JWT_JWKS_URL", self.jwt_jwks_url)) if value]  # fmt: skip
        if len(keys) > 1:
            raise ValueError(f"set one of {' or '.join(keys)}, not several")
        if self.jwt_jwks_url and self.jwt_jwks_url.scheme != "https" and not self.development:
            raise ValueError("JWT_JWKS_URL must be https outside development: keys fetched "
                             "over plain http can be swapped on the way")  # fmt: skip
        if keys:
            return self
        if not self.jwt_secret:
            raise ValueError(
                "no JWT key configured: set JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE "
                "or JWT_JWKS_URL"
            )
        if self.environment == "production":
            if self.jwt_secret == DEV_SECRET:
                raise ValueError(
                    "refusing to start in production with the development JWT secret: "
                    "set JWT_JWKS_URL, JWT_JWKS_FILE or JWT_PUBLIC_KEY_FILE (RS256), or a "
                    "JWT_SECRET of "
                    f"at least {MIN_SECRET_BYTES} random bytes"
                )
            if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"refusing to start in production with a JWT_SECRET shorter than "
                    f"{MIN_SECRET_BYTES} bytes"
                )
        if (
            self.jwt_secret == DEV_SECRET
            and not is_loopback(self.host)
            and not self.allow_development_on_network
        ):
            raise ValueError(
                f"refusing to listen on {self.host} with the development JWT secret: anyone "
                "who reaches the port could mint an admin token. Listen on 127.0.0.1, configure "
                "a key (JWT_SECRET, JWT_JWKS_URL, JWT_JWKS_FILE, JWT_PUBLIC_KEY_FILE), or set "
                "ALLOW_DEVELOPMENT_ON_NETWORK=true if you mean it"
            )
        return self

    @property
    def development(self) -> bool:
        return self.environment != "production"


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or `localhost`) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
