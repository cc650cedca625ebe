"""An item an admin adds to the catalogue (the base catalogue ships with the project)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from shared.catalogue import CAPABILITIES, EumClass, Item
from shared.contracts.requests import CatalogueItemAdded
from shared.domain import Aggregate, DomainError, DomainEvent

CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,39}$")


def stream_id(code: str) -> str:
    return f"catalogue-{code}"


class CatalogueItem(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.item: Item | None = None

    @classmethod
    def add(
        cls,
        *,
        code: str,
        name: str,
        capability: str,
        unit: str,
        eum_class: EumClass,
        substitutes: Sequence[str],
        known: Mapping[str, Item],
    ) -> CatalogueItem:
        """Add an item; its substitutes must be known items counted in the same unit."""
        if not CODE.match(code):
            raise DomainError(f"{code!r} is not an item code (A-Z, 0-9 and '-', 2-40 characters).")
        if code in known:
            raise DomainError(f"The catalogue already has an item {code}.")
        if capability not in CAPABILITIES:
            raise DomainError(f"{capability!r} is not one of the capabilities: {CAPABILITIES}.")
        for substitute in substitutes:
            other = known.get(substitute)
            if other is None:
                raise DomainError(f"Substitute {substitute} is not in the catalogue.")
            if other.unit != unit:
                raise DomainError(
                    f"Substitute {substitute} is counted in {other.unit}, not {unit}: "
                    "interchangeable items share a unit."
                )
        entry = cls(stream_id(code))
        entry._record(
            CatalogueItemAdded(
                item_code=code,
                name=name,
                capability=capability,
                unit=unit,
                eum_class=eum_class,
                substitutes=list(dict.fromkeys(substitutes)),
            )
        )
        return entry

    def apply(self, event: DomainEvent) -> None:
        match event:
            case CatalogueItemAdded():
                self.item = item_of(event)
            case _:
                raise TypeError(f"a catalogue item does not apply {event.TYPE}")


def item_of(event: CatalogueItemAdded) -> Item:
    eum: EumClass = event.eum_class  # type: ignore[assignment]  # validated when added
    return Item(
        code=event.item_code,
        name=event.name,
        capability=event.capability,
        unit=event.unit,
        eum_class=eum,
        substitutes=tuple(event.substitutes),
    )
