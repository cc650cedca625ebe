"""Producer and consumer settings shared by the relay, the consumers and the tests."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer


def new_producer(bootstrap_servers: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): retries never duplicate or reorder within a partition."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,  # latency first; batches still form whenever the relay has a backlog
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
