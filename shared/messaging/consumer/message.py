"""What a consumer hands its handler: one Kafka record's event, and the handler types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from shared.domain.events import Metadata
from shared.eventstore.store import Transaction
from shared.messaging.envelope import Envelope


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    event: Envelope
    # The record's value as received (the data's JSON), for handlers that store it as it is.
    raw: bytes | None = field(default=None, repr=False, compare=False)

    def follow_up(self, actor: str = "system", *, restates: bool = False) -> Metadata:
        """Metadata for the events a handler stores in answer to this one: the same correlation
        id (so the work can be followed across services), caused by this event.

        Business time: a follow-up is a fact of its own, dated when it is made (a proposal, a
        shipment planned); one that only restates this event's fact in another service's terms
        (`restates`: a delivery recorded on the requirement for a receipt) is dated when that
        fact happened."""
        cause = str(self.event.event_id)
        return Metadata(
            actor=actor,
            correlation_id=self.event.meta.correlation_id or cause,
            causation_id=cause,
            occurred_at=self.event.occurred_at if restates else None,
        )


Handler = Callable[[Transaction, Message], Awaitable[None]]
# Applies several messages (in offset order within each partition) at once: for consumers that
# write their effects in bulk. Called with a single message when a batch is retried one by one.
BatchHandler = Callable[[Transaction, Sequence[Message]], Awaitable[None]]
# Called after a batch's transaction has committed, with the messages it applied.
CommitListener = Callable[[Sequence[Message]], None]
