import uuid
from datetime import UTC, date, datetime

import pytest

from shared.domain import Metadata, StoredEvent, UnknownEventType
from shared.messaging import envelope
from shared.messaging.envelope import EnvelopeError
from tests.sample_domain import Credited, Ledger, Opened, registry


def test_encode_uses_explicit_type_and_version() -> None:
    new = registry.encode(Opened(owner="ua", currency="EUR"), Metadata(actor="alice"))
    assert (new.event_type, new.schema_version) == ("ledger.opened", 2)
    assert new.data == {"owner": "ua", "currency": "EUR"}
    assert new.meta.actor == "alice"


def test_old_versions_are_upcast_on_read() -> None:
    event = registry.decode("ledger.opened", 1, {"owner": "ua"})
    assert event == Opened(owner="ua", currency="EUR")


def test_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        registry.decode("ledger.renamed", 1, {})


def test_registering_a_type_twice_fails() -> None:
    with pytest.raises(ValueError, match="twice"):
        registry.register(Credited)


def test_aggregate_changes_only_through_its_events() -> None:
    ledger = Ledger.open("L-1", "ua")
    ledger.credit(5)
    ledger.credit(7)
    assert (ledger.balance, ledger.version, ledger.persisted_version) == (12, 3, 0)
    again = Ledger.rehydrate("L-1", ledger.pending)
    assert (again.balance, again.owner, again.version, again.pending) == (12, "ua", 3, [])


def _stored(meta: Metadata | None = None) -> StoredEvent:
    return StoredEvent(
        position=42,
        stream_id="L-1",
        stream_version=3,
        event_id=uuid.uuid4(),
        event_type="ledger.credited",
        schema_version=1,
        data={"amount": 5},
        meta=meta or Metadata(actor="alice", correlation_id="c-1", causation_id=None),
        recorded_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    )


def test_cloudevents_binary_mode_round_trip() -> None:
    stored = _stored()
    key, value, headers = envelope.encode(stored, "/aidline/test")
    names = {name for name, _ in headers}
    assert key == b"L-1"
    assert names >= {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "content-type",
        "ce_streamversion",
        "ce_position",
        "ce_schemaversion",
        "ce_correlationid",
        "ce_causationid",
        "ce_actor",
    }
    decoded = envelope.decode(headers, value)
    assert decoded.event_id == stored.event_id
    assert (decoded.event_type, decoded.subject, decoded.position) == ("ledger.credited", "L-1", 42)
    assert decoded.meta == stored.meta
    assert decoded.data == {"amount": 5}
    assert decoded.time == stored.recorded_at


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([], b"{}"),
        ([("ce_specversion", b"0.3")], b"{}"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"not-a-uuid")], b"{}"),
        (None, b"[1, 2]"),
        (None, b"\xff\xfe"),
        (None, b"{not json"),
        ([("ce_specversion", b"1.0"), ("ce_id", None)], b"{}"),  # Kafka allows null values
    ],
)
def test_malformed_messages_are_rejected(
    headers: list[tuple[str, bytes]] | None, value: bytes
) -> None:
    if headers is None:
        headers = envelope.encode(_stored(), "/aidline/test")[2]
    with pytest.raises(EnvelopeError):
        envelope.decode(headers, value)


# -- business time (ce_occurredat) -------------------------------------------------------------


def test_business_time_travels_beside_record_time() -> None:
    announced = datetime(2022, 4, 28, tzinfo=UTC)
    stored = _stored(meta=Metadata(actor="forum-1", occurred_at=announced))
    _, value, headers = envelope.encode(stored, "/aidline/test")
    assert dict(headers)["ce_occurredat"] == b"2022-04-28T00:00:00+00:00"
    decoded = envelope.decode(headers, value)
    assert decoded.meta == stored.meta
    assert decoded.occurred_at == announced == stored.occurred_at
    assert decoded.time == stored.recorded_at != announced


def test_an_event_dated_when_recorded_sends_its_record_time_as_business_time() -> None:
    stored = _stored()
    _, value, headers = envelope.encode(stored, "/aidline/test")
    assert dict(headers)["ce_occurredat"] == dict(headers)["ce_time"]
    decoded = envelope.decode(headers, value)
    assert decoded.meta.occurred_at is None  # no second date parsed for most events
    assert decoded.occurred_at == stored.recorded_at == stored.occurred_at


def test_events_published_before_business_time_occurred_when_recorded() -> None:
    stored = _stored()
    _, value, headers = envelope.encode(stored, "/aidline/test")
    old = [(name, v) for name, v in headers if name != "ce_occurredat"]
    decoded = envelope.decode(old, value)
    assert decoded.occurred_at == decoded.time == stored.recorded_at


def test_stored_metadata_without_business_time_reads_as_recorded() -> None:
    old = {"actor": "a", "correlation_id": "c", "causation_id": "x"}
    assert Metadata.from_dict(old).occurred_at is None
    assert Metadata.from_dict(old).as_dict() == old  # nothing added to what is stored
    dated = Metadata(occurred_at=datetime(2024, 2, 1, 9, 30, tzinfo=UTC))
    assert Metadata.from_dict(dated.as_dict()) == dated


def test_a_day_occurs_at_its_start_in_utc() -> None:
    meta = Metadata(actor="a").occurred(date(2023, 7, 11))
    assert meta.occurred_at == datetime(2023, 7, 11, tzinfo=UTC)
    assert meta.actor == "a"
    naive = Metadata().occurred(datetime(2023, 7, 11, 8, 0))
    assert naive.occurred_at == datetime(2023, 7, 11, 8, 0, tzinfo=UTC)
    assert meta.occurred(None).occurred_at is None
