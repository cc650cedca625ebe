"""The dead-letter path: a message that cannot be applied goes to `<topic>.dlq.<consumer>` with
the error in headers, so the consumer can go on and an operator can look at it."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import Counter

from shared.messaging.kafka import new_producer
from shared.messaging.topics import dlq_topic

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "aidline_consumer_dlq_total", "Messages sent to the dead-letter topic", ["consumer", "topic"]
)


class DeadLetters:
    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self._producer: Any = None

    async def start(self, bootstrap_servers: str) -> None:
        self._producer = new_producer(bootstrap_servers)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(
        self, record: ConsumerRecord[Any, Any], error: BaseException, attempts: int
    ) -> None:
        headers = [
            *record.headers,
            ("dlq_consumer", self.consumer.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error", str(error)[:4000].encode()),
        ]
        topic = dlq_topic(record.topic, self.consumer)
        await self._producer.send_and_wait(
            topic, value=record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.consumer, record.topic).inc()
        log.error(
            "consumer %s: message %s/%d/%d dead-lettered to %s: %r",
            self.consumer,
            record.topic,
            record.partition,
            record.offset,
            topic,
            error,
        )
