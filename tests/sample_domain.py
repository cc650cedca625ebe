"""A tiny domain for testing the shared machinery without any service's rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.domain import Aggregate, DomainEvent, EventRegistry

registry = EventRegistry(source="/aidline/test", topic="test")


@registry.register
@dataclass(frozen=True, kw_only=True)
class Opened(DomainEvent):
    TYPE = "ledger.opened"
    VERSION = 2
    owner: str
    currency: str  # added in v2; v1 data is upcast with "EUR"


@registry.register
@dataclass(frozen=True, kw_only=True)
class Credited(DomainEvent):
    TYPE = "ledger.credited"
    amount: int


@registry.upcaster("ledger.opened", from_version=1)
def _opened_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


class Ledger(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner = ""
        self.currency = ""
        self.balance = 0

    @classmethod
    def open(cls, ledger_id: str, owner: str) -> Ledger:
        ledger = cls(ledger_id)
        ledger._record(Opened(owner=owner, currency="EUR"))
        return ledger

    def credit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("credit must be positive")
        self._record(Credited(amount=amount))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case Opened(owner=owner, currency=currency):
                self.owner, self.currency = owner, currency
            case Credited(amount=amount):
                self.balance += amount
