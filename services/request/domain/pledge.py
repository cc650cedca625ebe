"""A pledge: what a donor nation offers; announced, confirmed, reduced or withdrawn."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from services.request.domain.rules import check_quantity
from shared.catalogue import Item
from shared.contracts.requests import (
    PledgeAnnounced,
    PledgeConfirmed,
    PledgeReduced,
    PledgeSource,
    PledgeWithdrawn,
)
from shared.domain import Aggregate, DomainError, DomainEvent

PREFIX = "PLG"


class PledgeStatus(StrEnum):
    ANNOUNCED = "announced"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"


class Pledge(Aggregate):
    def __init__(self, pledge_id: str) -> None:
        super().__init__(pledge_id)
        self.status = PledgeStatus.ANNOUNCED
        self.donor = ""
        self.item_code = ""
        self.unit = ""
        self.quantity = 0
        self.source: PledgeSource = "stock"
        self.available_from = date.min
        self.value_eur: float | None = None
        self.source_url: str | None = None
        self.decision_id: str | None = None
        self.withdraw_reason: str | None = None

    # -- commands --------------------------------------------------------------------------

    @classmethod
    def announce(
        cls,
        pledge_id: str,
        *,
        donor: str,
        item: Item,
        quantity: int,
        source: PledgeSource,
        available_from: date,
        value_eur: float | None = None,
        source_url: str | None = None,
    ) -> Pledge:
        check_quantity(quantity)
        if value_eur is not None and value_eur < 0:
            raise DomainError("The value of a pledge cannot be negative.")
        pledge = cls(pledge_id)
        pledge._record(
            PledgeAnnounced(
                pledge_id=pledge_id,
                donor=donor,
                item_code=item.code,
                quantity=quantity,
                unit=item.unit,
                source=source,
                available_from=available_from,
                value_eur=value_eur,
                source_url=source_url,
            )
        )
        return pledge

    def confirm(self, decision_id: str) -> None:
        """The forum's decision hands the pledge to execution."""
        self._require_not_withdrawn("confirmed")
        if self.status is PledgeStatus.CONFIRMED:
            raise DomainError(
                f"Pledge {self.id} was already confirmed by decision {self.decision_id}."
            )
        self._record(PledgeConfirmed(decision_id=decision_id))

    def reduce(self, quantity: int) -> None:
        """Lower the pledge to a new total (to take it back entirely, withdraw it)."""
        self._require_not_withdrawn("reduced")
        check_quantity(quantity, "new quantity")
        if quantity >= self.quantity:
            raise DomainError(
                f"Pledge {self.id} stands at {self.quantity:,} {self.unit}: a reduction must "
                f"lower it, and {quantity:,} does not."
            )
        self._record(PledgeReduced(quantity=quantity))

    def withdraw(self, reason: str) -> None:
        self._require_not_withdrawn("withdrawn")
        self._record(PledgeWithdrawn(reason=reason))

    def _require_not_withdrawn(self, action: str) -> None:
        if self.status is PledgeStatus.WITHDRAWN:
            raise DomainError(
                f"Pledge {self.id} was withdrawn ({self.withdraw_reason}); it cannot be {action}."
            )

    # -- state -----------------------------------------------------------------------------

    def apply(self, event: DomainEvent) -> None:
        match event:
            case PledgeAnnounced():
                self.donor, self.item_code, self.unit = event.donor, event.item_code, event.unit
                self.quantity, self.source = event.quantity, event.source
                self.available_from, self.value_eur = event.available_from, event.value_eur
                self.source_url = event.source_url
            case PledgeConfirmed():
                self.status, self.decision_id = PledgeStatus.CONFIRMED, event.decision_id
            case PledgeReduced():
                self.quantity = event.quantity
            case PledgeWithdrawn():
                self.status, self.withdraw_reason = PledgeStatus.WITHDRAWN, event.reason
            case _:
                raise TypeError(f"a pledge does not apply {event.TYPE}")
