"""The consumer every service uses to apply other services' events, exactly once, in parts:
`loop` (the Kafka client and the poll loop), `applying` (a poll in one transaction),
`failures` (what is retried), `deadletter`, `redrive` (replaying a dead letter),
`dead_letter_admin` (what operators see and select), `health`; the tracking record is
`shared.messaging.tracking`."""

from shared.messaging.consumer.health import ConsumerHealth
from shared.messaging.consumer.loop import EventConsumer
from shared.messaging.consumer.message import BatchHandler, CommitListener, Handler, Message

__all__ = [
    "BatchHandler",
    "CommitListener",
    "ConsumerHealth",
    "EventConsumer",
    "Handler",
    "Message",
]
