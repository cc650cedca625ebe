"""Builders for the allocation service's integration tests: request/delivery events as the
request and delivery services would publish them, with ids unique to one test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shared.contracts import deliveries, requests
from shared.contracts.deliveries import ShipmentLost, ShipmentPlanned
from shared.contracts.requests import (
    CatalogueItemAdded,
    PledgeAnnounced,
    PledgeConfirmed,
    PledgeReduced,
    PledgeWithdrawn,
    RequirementAmended,
    RequirementCancelled,
    RequirementEndorsed,
    RequirementSubmitted,
)
from shared.domain import DomainEvent, EventRegistry, Metadata, StoredEvent
from shared.messaging import envelope
from shared.messaging.consumer import Message
from shared.messaging.topics import DELIVERIES, REQUESTS

NEEDED = date(2025, 6, 1)
AVAILABLE = date(2025, 3, 1)


@dataclass
class Scenario:
    """Events of one test: every id starts with a prefix no other test run uses."""

    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    # The correlation id the events carry (as a forum decision's request would give them).
    correlation_id: str | None = None
    _versions: dict[str, int] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def item(self) -> str:
        return f"{self.prefix.upper()}-HE"

    @property
    def substitute(self) -> str:
        return f"{self.prefix.upper()}-ER"

    def items(self) -> list[StoredEvent]:
        """Two new artillery items that substitute for each other (a family of their own)."""
        return [
            self._event(requests, code, CatalogueItemAdded(
                item_code=code, name=code, capability="artillery", unit="rounds",
                eum_class="none", substitutes=[other],
            ))
            for code, other in ((self.substitute, self.item), (self.item, self.substitute))
        ]  # fmt: skip

    def requirement(
        self,
        name: str,
        quantity: int,
        priority: int,
        *,
        item: str | None = None,
        decision: str = "D-1",
    ) -> list[StoredEvent]:
        rid = self.id(name)
        return [
            self._event(requests, rid, RequirementSubmitted(
                requirement_id=rid, item_code=item or self.item, quantity=quantity, unit="rounds",
                priority=priority, needed_by=NEEDED, destination="UA-LVIV", justification="test",
            )),
            self._event(
                requests, rid, RequirementEndorsed(priority=priority, decision_id=decision)
            ),
        ]  # fmt: skip

    def pledge(
        self,
        name: str,
        quantity: int,
        *,
        item: str | None = None,
        available: date = AVAILABLE,
        decision: str = "D-1",
    ) -> list[StoredEvent]:
        pid = self.id(name)
        return [
            self._event(requests, pid, PledgeAnnounced(
                pledge_id=pid, donor="PL", item_code=item or self.item, quantity=quantity,
                unit="rounds", source="stock", available_from=available,
            )),
            self._event(requests, pid, PledgeConfirmed(decision_id=decision)),
        ]  # fmt: skip

    def withdraw(self, name: str, reason: str = "needed at home") -> StoredEvent:
        return self._event(requests, self.id(name), PledgeWithdrawn(reason=reason))

    def reduce(self, name: str, quantity: int) -> StoredEvent:
        return self._event(requests, self.id(name), PledgeReduced(quantity=quantity))

    def amend(self, name: str, **changes: Any) -> StoredEvent:
        return self._event(requests, self.id(name), RequirementAmended(**changes))

    def cancel(self, name: str, reason: str = "no longer needed") -> StoredEvent:
        return self._event(requests, self.id(name), RequirementCancelled(reason=reason))

    def shipment(self, name: str, allocation: dict[str, Any], quantity: int) -> StoredEvent:
        sid = self.id(name)
        return self._event(deliveries, sid, ShipmentPlanned(
            shipment_id=sid, allocation_id=allocation["allocation_id"],
            requirement_id=allocation["requirement_id"], pledge_id=allocation["pledge_id"],
            donor="PL", item_code=allocation["item_code"], quantity=quantity,
            hub=allocation["hub"], handover_point="Siret-Porubne",
        ))  # fmt: skip

    def lost(self, name: str, quantity: int) -> StoredEvent:
        return self._event(
            deliveries, self.id(name), ShipmentLost(quantity=quantity, reason="ambush")
        )

    def _event(self, registry: EventRegistry, stream: str, event: DomainEvent) -> StoredEvent:
        new = registry.encode(event, Metadata(actor="tester", correlation_id=self.correlation_id))
        version = self._versions.get(stream, 0) + 1
        self._versions[stream] = version
        return StoredEvent(
            position=version,
            stream_id=stream,
            stream_version=version,
            event_id=new.event_id,
            event_type=new.event_type,
            schema_version=new.schema_version,
            data=new.data,
            meta=new.meta,
            recorded_at=datetime.now(UTC),
        )


def message(event: StoredEvent) -> Message:
    """The consumer's view of `event` as it would arrive from Kafka."""
    topic = DELIVERIES if event.event_type.startswith("shipment.") else REQUESTS
    _key, value, headers = envelope.encode(event, "/aidline/test")
    return Message(topic, 0, event.position, envelope.decode(headers, value))
