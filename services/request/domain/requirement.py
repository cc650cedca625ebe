"""A requirement: what the recipient needs, from submission to fulfilment or cancellation."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from services.request.domain.rules import check_priority, check_quantity
from shared.catalogue import Item
from shared.contracts.requests import (
    RequirementAmended,
    RequirementCancelled,
    RequirementDeliveryRecorded,
    RequirementEndorsed,
    RequirementFulfilled,
    RequirementSubmitted,
)
from shared.domain import Aggregate, DomainError, DomainEvent

PREFIX = "REQ"


class RequirementStatus(StrEnum):
    SUBMITTED = "submitted"
    ENDORSED = "endorsed"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class Requirement(Aggregate):
    def __init__(self, requirement_id: str) -> None:
        super().__init__(requirement_id)
        self.status = RequirementStatus.SUBMITTED
        self.item_code = ""
        self.unit = ""
        self.quantity = 0
        self.priority = 4
        self.needed_by = date.min
        self.destination = ""
        self.justification = ""
        self.decision_id: str | None = None
        self.cancel_reason: str | None = None
        self.deliveries: dict[str, int] = {}  # shipment id -> quantity delivered

    @property
    def delivered(self) -> int:
        return sum(self.deliveries.values())

    # -- commands --------------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        requirement_id: str,
        *,
        item: Item,
        quantity: int,
        priority: int,
        needed_by: date,
        destination: str,
        justification: str,
    ) -> Requirement:
        check_quantity(quantity)
        check_priority(priority)
        requirement = cls(requirement_id)
        requirement._record(
            RequirementSubmitted(
                requirement_id=requirement_id,
                item_code=item.code,
                quantity=quantity,
                unit=item.unit,
                priority=priority,
                needed_by=needed_by,
                destination=destination,
                justification=justification,
            )
        )
        return requirement

    def endorse(self, decision_id: str, priority: int | None = None) -> None:
        """The forum endorses the requirement, possibly re-ranking its priority."""
        self._require_open("endorsed")
        if self.status is RequirementStatus.ENDORSED:
            raise DomainError(
                f"Requirement {self.id} was already endorsed by decision {self.decision_id}."
            )
        if priority is not None:
            check_priority(priority)
        self._record(
            RequirementEndorsed(priority=priority or self.priority, decision_id=decision_id)
        )

    def amend(
        self,
        *,
        quantity: int | None = None,
        priority: int | None = None,
        needed_by: date | None = None,
    ) -> None:
        self._require_open("amended")
        if quantity is not None:
            check_quantity(quantity)
            if quantity < self.delivered:
                raise DomainError(
                    f"Requirement {self.id} cannot be lowered to {quantity:,} {self.unit}: "
                    f"{self.delivered:,} have already been delivered."
                )
        if priority is not None:
            check_priority(priority)
        amended = RequirementAmended(
            quantity=quantity if quantity != self.quantity else None,
            priority=priority if priority != self.priority else None,
            needed_by=needed_by if needed_by != self.needed_by else None,
        )
        if amended == RequirementAmended():
            raise DomainError(f"The amendment changes nothing on requirement {self.id}.")
        self._record(amended)
        self._fulfil_if_delivered()

    def cancel(self, reason: str) -> None:
        self._require_open("cancelled")
        self._record(RequirementCancelled(reason=reason))

    def record_delivery(self, shipment_id: str, quantity: int) -> bool:
        """Record what a shipment delivered, once per shipment; False if it was already recorded.

        A delivery is a fact from the field: it is recorded whatever the requirement's state."""
        if shipment_id in self.deliveries:
            return False
        self._record(
            RequirementDeliveryRecorded(shipment_id=shipment_id, quantity=max(0, quantity))
        )
        self._fulfil_if_delivered()
        return True

    # -- rules -----------------------------------------------------------------------------

    def _require_open(self, action: str) -> None:
        if self.status is RequirementStatus.CANCELLED:
            raise DomainError(
                f"Requirement {self.id} was cancelled ({self.cancel_reason}); "
                f"it cannot be {action}."
            )
        if self.status is RequirementStatus.FULFILLED:
            raise DomainError(f"Requirement {self.id} is already fulfilled; it cannot be {action}.")

    def _fulfil_if_delivered(self) -> None:
        open_states = (RequirementStatus.SUBMITTED, RequirementStatus.ENDORSED)
        if self.status in open_states and self.delivered >= self.quantity > 0:
            self._record(RequirementFulfilled())

    # -- state -----------------------------------------------------------------------------

    def apply(self, event: DomainEvent) -> None:
        match event:
            case RequirementSubmitted():
                self.item_code, self.unit = event.item_code, event.unit
                self.quantity, self.priority = event.quantity, event.priority
                self.needed_by, self.destination = event.needed_by, event.destination
                self.justification = event.justification
            case RequirementEndorsed():
                self.status = RequirementStatus.ENDORSED
                self.priority, self.decision_id = event.priority, event.decision_id
            case RequirementAmended():
                self.quantity = event.quantity if event.quantity is not None else self.quantity
                self.priority = event.priority if event.priority is not None else self.priority
                self.needed_by = event.needed_by if event.needed_by is not None else self.needed_by
            case RequirementCancelled():
                self.status, self.cancel_reason = RequirementStatus.CANCELLED, event.reason
            case RequirementDeliveryRecorded():
                self.deliveries[event.shipment_id] = event.quantity
            case RequirementFulfilled():
                self.status = RequirementStatus.FULFILLED
            case _:
                raise TypeError(f"a requirement does not apply {event.TYPE}")
