"""A service refuses to start outside development with the development secret or no key, and
with Kafka settings that cannot work; the Kafka connection every client uses."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.auth import DEV_SECRET
from shared.messaging.kafka import KafkaConnection, connection
from shared.messaging.topics import INFINITE_RETENTION, TopicSettings
from shared.settings import ServiceSettings
from tests.authkit import public_pem, rsa_key
from tests.tls import make_pki

STRONG = "k" * 48


def _settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(_env_file=None, **values)


def _refused(**values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        _settings(**values)
    return str(raised.value)


def _pem(tmp_path: Path) -> Path:
    path = tmp_path / "public.pem"
    path.write_text(public_pem(rsa_key()))
    return path


def test_development_and_test_run_with_the_development_secret() -> None:
    assert _settings().jwt_secret == DEV_SECRET
    assert _settings(environment="test").development


def test_production_with_the_development_secret_is_refused() -> None:
    message = _refused(environment="production")
    assert "refusing to start in production with the development JWT secret" in message
    assert _refused(environment="production", jwt_secret=DEV_SECRET)


def test_production_with_the_development_secret_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", DEV_SECRET)
    with pytest.raises(ValidationError, match="development JWT secret"):
        ServiceSettings(_env_file=None)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_no_secret_and_no_key_is_refused_everywhere(environment: str) -> None:
    assert "no JWT key configured" in _refused(environment=environment, jwt_secret="")


def test_production_with_a_short_secret_is_refused() -> None:
    assert "shorter than 32 bytes" in _refused(environment="production", jwt_secret="short")


def test_production_with_a_strong_secret_starts() -> None:
    assert not _settings(environment="production", jwt_secret=STRONG).development


def test_production_with_a_public_key_or_jwks_file_starts(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    assert _settings(environment="production", jwt_public_key_file=_pem(tmp_path))
    assert _settings(environment="production", jwt_jwks_file=jwks)


def test_a_key_file_must_exist(tmp_path: Path) -> None:
    assert "jwt_public_key_file" in _refused(jwt_public_key_file=tmp_path / "missing.pem")
    assert "jwt_jwks_file" in _refused(jwt_jwks_file=tmp_path / "missing.json")


def test_public_key_and_jwks_together_are_ambiguous(tmp_path: Path) -> None:
    pem = _pem(tmp_path)
    assert "not several" in _refused(jwt_public_key_file=pem, jwt_jwks_file=pem)


@pytest.mark.parametrize(
    "values",
    [
        {"jwt_leeway_seconds": -1},
        {"jwt_leeway_seconds": 3600},
        {"jwt_issuer": ""},
        {"rate_limit_per_minute": 0},
        {"rate_limit_burst": 0},
        {"max_body_bytes": 10},
        {"environment": "staging"},
        {"kafka_group_instance_id": ""},
        {"kafka_group_instance_id": "pod 7"},  # the broker takes letters, digits, . _ - only
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, Any]) -> None:
    assert _refused(**values)


# -- Kafka: topic settings, the connection every client uses, client.id ---------------------


def test_more_insync_replicas_than_replicas_is_refused() -> None:
    message = _refused(kafka_replication_factor=2, kafka_min_insync_replicas=3)
    assert "KAFKA_MIN_INSYNC_REPLICAS=3 is more than KAFKA_REPLICATION_FACTOR=2" in message


def test_sasl_without_credentials_is_refused() -> None:
    assert "KAFKA_SASL_USERNAME" in _refused(kafka_security_protocol="SASL_SSL")


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    message = _refused(kafka_security_protocol="SSL", kafka_ssl_certfile=pki.client_cert)
    assert "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE together" in message


def test_tls_files_without_tls_are_refused(tmp_path: Path) -> None:
    assert "use SSL or SASL_SSL" in _refused(kafka_ssl_cafile=make_pki(tmp_path).ca)


def test_every_topic_gets_the_configured_replication() -> None:
    topics = TopicSettings.from_settings(
        _settings(kafka_topic_partitions=6, kafka_dlq_partitions=2,
                  kafka_replication_factor=3, kafka_min_insync_replicas=2)
    )  # fmt: skip
    events = topics.event_topics()
    dead = topics.dead_letter_topics(["aidline.requests", "aidline.deliveries"], "delivery")
    assert [(s.partitions, s.replication_factor) for s in events] == [(6, 3)] * 3
    assert [s.name for s in dead] == [
        "aidline.requests.dlq.delivery",
        "aidline.deliveries.dlq.delivery",
    ]
    assert [(s.partitions, s.replication_factor) for s in dead] == [(2, 3)] * 2
    for spec in [*events, *dead]:
        assert spec.configs == INFINITE_RETENTION | {"min.insync.replicas": "2"}


def test_plaintext_is_the_default_and_has_no_tls() -> None:
    options = connection("127.0.0.1:9092").options()
    assert options == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "aidline",
        "security_protocol": "PLAINTEXT",
    }


def test_tls_and_scram_reach_the_client_options(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    settings = _settings(
        service_name="allocation",
        kafka_bootstrap_servers="b1:9093,b2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="aidline",
        kafka_sasl_password="s3cret",
    )
    kafka = KafkaConnection.from_settings(settings)
    options = kafka.options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == (
        "SCRAM-SHA-256",
        "aidline",
    )
    assert options["sasl_plain_password"] == "s3cret"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert "s3cret" not in repr(kafka) and "s3cret" not in repr(settings)


def test_each_instance_has_its_own_client_id() -> None:
    default = KafkaConnection.from_settings(_settings(service_name="request"))
    assert default.client_id.startswith("aidline-request-")
    assert default.client_id.endswith(f"-{os.getpid()}")
    chosen = KafkaConnection.from_settings(_settings(kafka_client_id="request-pod-7"))
    assert chosen.client_id == "request-pod-7"


def test_a_transaction_mode_pool_is_refused_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refused(database_pool_mode="transaction")
    assert "(PgBouncer in transaction mode) is not supported" in message
    assert "session advisory lock" in message and "pool_mode = session" in message
    monkeypatch.setenv("DATABASE_POOL_MODE", "transaction")
    with pytest.raises(ValidationError, match="not supported"):
        ServiceSettings()
    monkeypatch.setenv("DATABASE_POOL_MODE", "session")
    assert ServiceSettings().database_pool_mode == "session"
