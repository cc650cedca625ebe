"""Events a consumer stores in answer to another keep its correlation id and name it as cause."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.domain import Metadata
from shared.messaging.consumer import Message
from shared.messaging.envelope import Envelope


def _message(meta: Metadata) -> Message:
    event = Envelope(
        event_id=uuid.uuid4(), source="/aidline/request", event_type="pledge.withdrawn",
        subject="P-1", time=datetime.now(UTC), stream_version=2, position=7, schema_version=1,
        meta=meta, data={"reason": "stock needed at home"},
    )  # fmt: skip
    return Message(topic="aidline.requests", partition=0, offset=41, event=event)


def test_follow_up_keeps_the_correlation_and_names_the_cause() -> None:
    message = _message(Metadata(actor="berlin-1@DE", correlation_id="forum-17", causation_id="r"))
    assert message.follow_up("allocation") == Metadata(
        actor="allocation", correlation_id="forum-17", causation_id=str(message.event.event_id)
    )


def test_without_a_correlation_the_cause_starts_one() -> None:
    message = _message(Metadata())
    meta = message.follow_up()
    assert meta.actor == "system"
    assert meta.correlation_id == meta.causation_id == str(message.event.event_id)


def test_a_follow_up_is_dated_when_made_unless_it_restates_the_fact() -> None:
    received = datetime(2025, 3, 2, 14, 0, tzinfo=UTC)
    message = _message(Metadata(actor="kyiv-1", occurred_at=received))
    assert message.follow_up("allocation").occurred_at is None  # a fact of its own: now
    assert message.follow_up("kyiv-1", restates=True).occurred_at == received


def test_restating_an_event_dated_when_recorded_takes_its_record_time() -> None:
    message = _message(Metadata())
    assert message.follow_up(restates=True).occurred_at == message.event.time
