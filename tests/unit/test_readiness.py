"""/readyz's verdict: only the database decides readiness; anything else down is degraded."""

from __future__ import annotations

from shared.runtime import readiness_status

UP = {"ok": True}
DOWN = {"ok": False, "error": "KafkaConnectionError"}


def test_every_check_passing_is_ready() -> None:
    assert readiness_status({"database": UP, "kafka": UP, "relay": UP}) == "ready"


def test_kafka_the_relay_or_a_consumer_down_is_degraded_not_unready() -> None:
    assert readiness_status({"database": UP, "kafka": DOWN}) == "degraded"
    assert readiness_status({"database": UP, "kafka": UP, "consumer:x": DOWN}) == "degraded"
    assert readiness_status({"database": UP, "relay": DOWN, "task:topics": DOWN}) == "degraded"


def test_without_its_database_a_service_is_not_ready() -> None:
    assert readiness_status({"database": DOWN, "kafka": UP}) == "not ready"
    assert readiness_status({"kafka": UP}) == "not ready"
