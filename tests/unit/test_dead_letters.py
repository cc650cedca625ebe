"""The pure parts of dead letters: what a letter's record says it is, what a replay request may
select, and how a replay is reported."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from shared.messaging.consumer.dead_letter_admin import ReplayReport
from shared.messaging.consumer.deadletter import _identity
from shared.messaging.consumer.redrive import Outcome, Replay
from shared.web.dead_letters import ReplayIn


def test_a_records_event_id_and_type_come_from_its_headers_when_it_has_them() -> None:
    event = uuid.uuid4()
    headers = [("ce_id", str(event).encode()), ("ce_type", b"pledge.announced")]
    assert _identity(headers) == (event, "pledge.announced")
    assert _identity([]) == (None, None)
    assert _identity([("ce_id", b"\xff not an id"), ("ce_type", b"\xff")]) == (None, None)


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [str(uuid.uuid4())]},
        {"consumer": "delivery", "all": True},
        {"consumer": "delivery", "topic": "aidline.requests", "partition": 0, "from_offset": 3},
        {"consumer": "delivery", "since": "2026-01-01T00:00:00Z", "limit": 500, "skip": 10},
    ],
)
def test_a_replay_selects_letters_by_id_or_a_consumers_letters(body: dict[str, Any]) -> None:
    command = ReplayIn.model_validate(body).command()
    assert bool(command.ids) != (command.consumer is not None)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"consumer": "delivery"},  # all of them must be asked for
        {"consumer": "delivery", "all": True, "to_offset": 9},
        {"ids": [str(uuid.uuid4())], "all": True},
        {"ids": [str(uuid.uuid4())], "consumer": "delivery"},
        {"ids": []},
        {"consumer": "delivery", "until": "2026-01-01T00:00:00"},  # no time zone
        {"consumer": "delivery", "all": True, "partition": -1},
        {"consumer": "delivery", "all": True, "from_offset": 2**63},
        {"consumer": "delivery", "all": True, "unknown": 1},
    ],
)
def test_a_replay_that_selects_nothing_clearly_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ReplayIn.model_validate(body)


def test_a_replay_is_reported_per_letter_with_counts() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    report = ReplayReport(
        [Replay(one, "c", Outcome.REPLAYED), Replay(two, "c", Outcome.FAILED, "Poison: no")], 3
    )
    assert report.as_dict() == {
        "replayed": 1,
        "already_replayed": 0,
        "already_applied": 0,
        "failed": 1,
        "results": [
            {"letter_id": str(one), "consumer": "c", "outcome": "replayed", "error": None},
            {"letter_id": str(two), "consumer": "c", "outcome": "failed", "error": "Poison: no"},
        ],
        "remaining": 3,
    }
