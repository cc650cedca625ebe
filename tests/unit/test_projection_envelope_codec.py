"""The envelope codec the projection's replay runs through: data encoded by orjson (json for what
orjson refuses) decodes to the same data, and a malformed value is still an EnvelopeError (the
consumer dead-letters it)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.bench_projection import _scenario
from shared.domain import Metadata, StoredEvent
from shared.messaging import envelope

AT = datetime(2026, 1, 1, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _stored(data: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        position=1, stream_id="S-1", stream_version=1, event_id=uuid.uuid4(),
        event_type="shipment.planned", schema_version=1, data=data,
        meta=Metadata(actor="tester"), recorded_at=AT,
    )  # fmt: skip


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_encoded_data_decodes_to_the_same_data(data: dict[str, Any]) -> None:
    _key, value, headers = envelope.encode(_stored(data), "/aidline/test")
    assert json.loads(value) == data  # any JSON reader reads it
    assert envelope.decode(headers, value).data == data


def test_the_benchmark_mix_and_what_orjson_refuses() -> None:
    for events in _scenario(7, AT).values():
        for _stream, _kind, data in events:
            assert json.loads(envelope.encode_data(data)) == data
    huge = {"quantity": 2**70}  # beyond orjson's 64 bits: the json module writes it
    assert envelope.encode_data(huge) == b'{"quantity":1180591620717411303424}'
    assert envelope.encode_data({"note": "é"}) == '{"note":"é"}'.encode()


@pytest.mark.parametrize("value", [b"{not json", b"[1, 2]", b"", None])
def test_a_malformed_value_is_an_envelope_error(value: bytes | None) -> None:
    _key, _value, headers = envelope.encode(_stored({"a": 1}), "/aidline/test")
    with pytest.raises(envelope.EnvelopeError):
        envelope.decode(headers, value)
