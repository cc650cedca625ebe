"""docs/integration/examples/consume.py works as documented, against the real broker."""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import ModuleType

from shared.contracts.deliveries import ShipmentDelayed
from shared.domain import DomainEvent, Metadata
from shared.messaging.envelope import Envelope
from tests.infra import create_topic, produce, stored_event

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "integration" / "examples" / "consume.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aidline_consume_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_decodes_headers_and_data(kafka: str) -> None:
    topic = await create_topic(partitions=2)
    delayed = replace(
        stored_event("SH-1", 3, {"reason": "border queue", "new_eta": "2025-03-04"}),
        event_type="shipment.delayed",
        meta=Metadata(actor="rze-ops", correlation_id="corr-9"),
    )
    other = stored_event("S-7", 1, {"amount": 5})  # a type no Aidline catalogue knows
    await produce(topic, [delayed, b"not a CloudEvent", other])
    received: list[tuple[Envelope, DomainEvent | None]] = []

    async def keep(event: Envelope, domain_event: DomainEvent | None) -> None:
        received.append((event, domain_event))

    example = _example()
    group = f"example-{uuid.uuid4().hex[:8]}"
    for group_id in (None, group):  # a replay without a group, then as a consumer group
        received.clear()
        count = await example.main(
            [topic], bootstrap_servers=kafka, group_id=group_id, limit=2, handle=keep
        )
        assert count == 2
        by_subject = {event.subject: (event, domain_event) for event, domain_event in received}
        event, domain_event = by_subject["SH-1"]
        assert event.event_id == delayed.event_id and event.meta.correlation_id == "corr-9"
        assert domain_event == ShipmentDelayed(reason="border queue", new_eta=date(2025, 3, 4))
        assert by_subject["S-7"][1] is None and by_subject["S-7"][0].data == {"amount": 5}
