"""Bounds every aggregate of the request service checks (the API states the same in its schema)."""

from __future__ import annotations

from shared.domain import DomainError

MAX_QUANTITY = 10_000_000
PRIORITIES = {1: "critical", 2: "high", 3: "medium", 4: "routine"}


def check_quantity(quantity: int, what: str = "quantity") -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise DomainError(f"The {what} must be between 1 and {MAX_QUANTITY:,}, not {quantity:,}.")


def check_priority(priority: int) -> None:
    if priority not in PRIORITIES:
        raise DomainError(f"The priority must be 1 (critical) to 4 (routine), not {priority}.")
