"""The Shipment aggregate: one allocation's materiel from the donor through a hub to handover.

Milestones (each an event on the shipment's stream):

    planned -> dispatched -> arrived_at_hub -> inspected (passed) -> departed_hub
            -> handed_over -> received
    arrived_at_hub -> held (inspected, held); held -> inspected again: passed releases it,
    held keeps it held (with new notes). A held shipment cannot depart.
    planned -> cancelled (the allocation was cancelled before dispatch).
    delayed and lost are recorded at any point before handover; losing everything left ends
    the shipment as `lost`.

Quantities: what can be handed over is the planned quantity minus what was lost; at handover
good + damaged + short must add up to exactly that. Nothing goes negative.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from enum import StrEnum

from services.delivery.domain import serials as serial_rules
from shared.contracts.deliveries import (
    EumClass,
    InspectionResult,
    ShipmentArrivedAtHub,
    ShipmentCancellationRefused,
    ShipmentCancelled,
    ShipmentDelayed,
    ShipmentDepartedHub,
    ShipmentDispatched,
    ShipmentEumDiscrepancy,
    ShipmentHandedOver,
    ShipmentInspected,
    ShipmentLost,
    ShipmentPlanned,
    ShipmentReceived,
    TransportMode,
)
from shared.domain import Aggregate, DomainError, DomainEvent


class Status(StrEnum):
    PLANNED = "planned"
    DISPATCHED = "dispatched"
    ARRIVED_AT_HUB = "arrived_at_hub"
    HELD = "held"
    INSPECTED = "inspected"
    DEPARTED_HUB = "departed_hub"
    HANDED_OVER = "handed_over"
    RECEIVED = "received"
    CANCELLED = "cancelled"
    LOST = "lost"


# Before handover: delays and losses may be recorded.
MOVING = frozenset(
    {
        Status.PLANNED,
        Status.DISPATCHED,
        Status.ARRIVED_AT_HUB,
        Status.HELD,
        Status.INSPECTED,
        Status.DEPARTED_HUB,
    }
)

# How each status reads in a sentence ("it ...").
_WHERE = {
    Status.PLANNED: "is planned and has not been dispatched yet",
    Status.DISPATCHED: "is on its way to the hub and has not arrived yet",
    Status.ARRIVED_AT_HUB: "is at the hub and has not been inspected yet",
    Status.HELD: "is held at the hub after inspection",
    Status.INSPECTED: "has passed inspection and has not left the hub yet",
    Status.DEPARTED_HUB: "has left the hub for the handover point",
    Status.HANDED_OVER: "was already handed over at the handover point",
    Status.RECEIVED: "was already received by the recipient",
    Status.CANCELLED: "was cancelled",
    Status.LOST: "was lost in full",
}


class Shipment(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = Status.PLANNED
        self.allocation_id = ""
        self.requirement_id = ""
        self.pledge_id = ""
        self.donor = ""
        self.item_code = ""
        self.quantity = 0
        self.hub = ""
        self.handover_point = ""
        self.eum_class: EumClass = "none"
        # The lineage: the decisions that endorsed the requirement and confirmed the pledge.
        self.endorsed_by_decision: str | None = None
        self.confirmed_by_decision: str | None = None
        self.mode: TransportMode | None = None
        self.carrier_ref: str | None = None
        self.serials: list[str] = []
        self.eta: date | None = None
        self.delay_reason: str | None = None
        self.inspection_notes: str | None = None
        self.lost = 0
        self.lost_serials: list[str] = []
        self.loss_reasons: list[str] = []
        self.received_good = 0
        self.damaged = 0
        self.short = 0
        self.handover_serials: list[str] = []
        self.missing_serials: list[str] = []
        self.unexpected_serials: list[str] = []
        self.cancel_reason: str | None = None

    # -- what it is -------------------------------------------------------------------------

    @property
    def remaining(self) -> int:
        """What is still on the shipment: planned minus lost."""
        return self.quantity - self.lost

    @property
    def enhanced(self) -> bool:
        return self.eum_class == "enhanced"

    # -- commands ---------------------------------------------------------------------------

    @classmethod
    def plan(
        cls,
        shipment_id: str,
        *,
        allocation_id: str,
        requirement_id: str,
        pledge_id: str,
        donor: str,
        item_code: str,
        quantity: int,
        hub: str,
        handover_point: str,
        eum_class: EumClass,
        endorsed_by_decision: str | None = None,
        confirmed_by_decision: str | None = None,
    ) -> Shipment:
        if quantity <= 0:
            raise DomainError(f"A shipment needs a positive quantity, not {quantity}.")
        if not donor:
            raise DomainError("A shipment needs the donor nation it comes from.")
        shipment = cls(shipment_id)
        shipment._record(
            ShipmentPlanned(
                shipment_id=shipment_id,
                allocation_id=allocation_id,
                requirement_id=requirement_id,
                pledge_id=pledge_id,
                donor=donor,
                item_code=item_code,
                quantity=quantity,
                hub=hub,
                handover_point=handover_point,
                eum_class=eum_class,
                endorsed_by_decision=endorsed_by_decision,
                confirmed_by_decision=confirmed_by_decision,
            )
        )
        return shipment

    def dispatch(self, mode: TransportMode, carrier_ref: str, serials: Collection[str]) -> None:
        self._require("be dispatched", {Status.PLANNED})
        carrier_ref = _text(carrier_ref, "A dispatch needs the carrier's reference.")
        cleaned = serial_rules.clean(serials, what="given at dispatch")
        if self.enhanced and len(cleaned) != self.remaining:
            raise DomainError(
                f"{self.item_code} is under enhanced end-use monitoring: give one serial number "
                f"per item dispatched ({self.remaining}), not {len(cleaned)}."
            )
        self._record(ShipmentDispatched(mode=mode, carrier_ref=carrier_ref, serials=cleaned))

    def arrive(self) -> None:
        self._require("arrive at the hub", {Status.DISPATCHED})
        self._record(ShipmentArrivedAtHub(hub=self.hub))

    def inspect(self, result: InspectionResult, notes: str = "") -> None:
        self._require("be inspected", {Status.ARRIVED_AT_HUB, Status.HELD})
        if result == "held" and not notes.strip():
            raise DomainError("A shipment held at inspection needs notes saying why.")
        self._record(ShipmentInspected(result=result, notes=notes.strip()))

    def depart(self) -> None:
        if self.status is Status.HELD:
            raise DomainError(
                f"Shipment {self.id} cannot leave the hub: it is held at inspection "
                f"({self.inspection_notes}). Inspect it again and pass it first."
            )
        self._require("leave the hub", {Status.INSPECTED})
        self._record(ShipmentDepartedHub())

    def hand_over(
        self, received_good: int, damaged: int, short: int, serials: Collection[str]
    ) -> None:
        self._require("be handed over", {Status.DEPARTED_HUB})
        counts = {"received in good condition": received_good, "damaged": damaged, "short": short}
        negative = [f"{name} ({n})" for name, n in counts.items() if n < 0]
        if negative:
            raise DomainError(f"Quantities cannot be negative: {', '.join(negative)}.")
        total = received_good + damaged + short
        if total != self.remaining:
            lost = f" ({self.quantity} shipped, {self.lost} lost)" if self.lost else ""
            raise DomainError(
                f"Good + damaged + short must add up to the {self.remaining} items on the "
                f"shipment{lost}; they add up to {total}."
            )
        cleaned = serial_rules.clean(serials, what="given at handover")
        present = received_good + damaged
        if len(cleaned) > present:
            raise DomainError(
                f"{len(cleaned)} serial numbers were given for {present} items handed over "
                "(good and damaged): give one per item present."
            )
        self._record(
            ShipmentHandedOver(
                received_good=received_good, damaged=damaged, short=short, serials=cleaned
            )
        )
        if self.enhanced:
            named_lost = set(self.lost_serials)
            expected = [s for s in self.serials if s not in named_lost]
            missing, unexpected = serial_rules.difference(expected, cleaned)
            if missing or unexpected:
                self._record(ShipmentEumDiscrepancy(missing=missing, unexpected=unexpected))

    def receive(self) -> None:
        self._require("be confirmed as received", {Status.HANDED_OVER})
        self._record(ShipmentReceived())

    def delay(self, reason: str, new_eta: date, reported_on: date) -> None:
        self._require("be delayed", MOVING, hint="Delays are recorded before handover.")
        reason = _text(reason, "A delay needs a reason.")
        if new_eta < reported_on:
            raise DomainError(
                f"The new ETA {new_eta.isoformat()} is before the day the delay was reported "
                f"({reported_on.isoformat()})."
            )
        self._record(ShipmentDelayed(reason=reason, new_eta=new_eta))

    def report_loss(self, quantity: int, reason: str, serials: Collection[str] = ()) -> None:
        self._require("report a loss", MOVING, hint="Losses are recorded before handover.")
        if quantity <= 0:
            raise DomainError(f"A loss needs a positive quantity, not {quantity}.")
        if quantity > self.remaining:
            raise DomainError(
                f"Cannot lose {quantity}: only {self.remaining} of the {self.quantity} items "
                "are still on the shipment."
            )
        reason = _text(reason, "A loss needs a reason.")
        cleaned = serial_rules.clean(serials, what="of the lost items")
        if cleaned:
            self._check_lost_serials(quantity, cleaned)
        self._record(ShipmentLost(quantity=quantity, reason=reason, serials=cleaned))

    def respond_to_cancellation(self, reason: str) -> None:
        """The allocation was cancelled: cancel if not dispatched, else record the refusal."""
        if self.status is Status.CANCELLED:
            return
        if self.status is Status.PLANNED:
            self._record(ShipmentCancelled(reason=reason))
            return
        self._record(
            ShipmentCancellationRefused(
                reason=reason,
                status=self.status.value,
                refusal=f"The shipment {_WHERE[self.status]}; it can no longer be cancelled.",
            )
        )

    # -- rules ------------------------------------------------------------------------------

    def _require(self, action: str, allowed: Collection[Status], hint: str = "") -> None:
        if self.status not in allowed:
            message = f"Shipment {self.id} cannot {action}: it {_WHERE[self.status]}."
            raise DomainError(f"{message} {hint}".strip())

    def _check_lost_serials(self, quantity: int, lost: list[str]) -> None:
        if self.status is Status.PLANNED:
            raise DomainError("No serial numbers are recorded before dispatch; omit them.")
        if len(lost) != quantity:
            raise DomainError(
                f"Name one serial per lost item ({quantity}), not {len(lost)}, or none."
            )
        on_board = set(self.serials) - set(self.lost_serials)
        unknown = sorted(set(lost) - on_board)
        if unknown:
            raise DomainError(
                f"These serial numbers are not on the shipment: {', '.join(unknown)}."
            )

    # -- state ------------------------------------------------------------------------------

    def apply(self, event: DomainEvent) -> None:
        match event:
            case ShipmentPlanned():
                self.allocation_id = event.allocation_id
                self.requirement_id = event.requirement_id
                self.pledge_id = event.pledge_id
                self.donor = event.donor
                self.item_code = event.item_code
                self.quantity = event.quantity
                self.hub = event.hub
                self.handover_point = event.handover_point
                self.eum_class = event.eum_class
                self.endorsed_by_decision = event.endorsed_by_decision
                self.confirmed_by_decision = event.confirmed_by_decision
                self.status = Status.PLANNED
            case ShipmentDispatched():
                self.mode, self.carrier_ref = event.mode, event.carrier_ref
                self.serials = list(event.serials)
                self.status = Status.DISPATCHED
            case ShipmentArrivedAtHub():
                self.status = Status.ARRIVED_AT_HUB
            case ShipmentInspected():
                self.inspection_notes = event.notes
                self.status = Status.HELD if event.result == "held" else Status.INSPECTED
            case ShipmentDepartedHub():
                self.status = Status.DEPARTED_HUB
            case ShipmentHandedOver():
                self.received_good, self.damaged, self.short = (
                    event.received_good,
                    event.damaged,
                    event.short,
                )
                self.handover_serials = list(event.serials)
                self.status = Status.HANDED_OVER
            case ShipmentEumDiscrepancy():
                self.missing_serials = list(event.missing)
                self.unexpected_serials = list(event.unexpected)
            case ShipmentReceived():
                self.status = Status.RECEIVED
            case ShipmentDelayed():
                self.eta, self.delay_reason = event.new_eta, event.reason
            case ShipmentLost():
                self.lost += event.quantity
                self.lost_serials.extend(event.serials)
                self.loss_reasons.append(event.reason)
                if self.remaining == 0:
                    self.status = Status.LOST
            case ShipmentCancelled():
                self.cancel_reason = event.reason
                self.status = Status.CANCELLED
            case ShipmentCancellationRefused():
                pass  # the shipment goes on; the refusal is on record
            case _:
                raise TypeError(f"Shipment cannot apply {type(event).__name__}")


def _text(value: str, message: str) -> str:
    if not value.strip():
        raise DomainError(message)
    return value.strip()
