"""Where an allocation is handled and by when it must be handed over (pure rules).

Hub rule (hubs are configuration: `shared/catalogue/hubs.json`): a hub that lists the item's
capability is a specialist for it and is preferred; otherwise a general hub (one that lists no
capabilities, i.e. serves everything) takes it. Among equals the smallest hub code wins, so the
choice is stable. With today's configuration: artillery, demining and maritime items go through
RO-SUC (Suceava), everything else through PL-RZE (Rzeszów-Jasionka).

Handover rule: the materiel must be handed over by the requirement's `needed_by`; a pledge that
cannot make it (`available_from + lead_days > needed_by`) is late, and its handover-by date is
the earliest it can make, `available_from + lead_days`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from shared.catalogue import Hub


@dataclass(frozen=True)
class HubChoice:
    hub: str
    why: str


class HubRule:
    def __init__(self, hubs: Iterable[Hub]) -> None:
        ordered = sorted(hubs, key=lambda h: h.code)
        self._general = [h.code for h in ordered if not h.capabilities]
        self._specialists: dict[str, list[str]] = {}
        for hub in ordered:
            for capability in hub.capabilities:
                self._specialists.setdefault(capability, []).append(hub.code)
        if not self._general:
            raise ValueError("the hub configuration needs at least one hub serving everything")

    def choose(self, capability: str) -> HubChoice:
        specialists = self._specialists.get(capability)
        if specialists:
            return HubChoice(specialists[0], f"specialist hub for {capability}")
        return HubChoice(self._general[0], "general hub")


def days_late(available_from: date, needed_by: date, lead_days: int) -> int:
    """Days by which a pledge misses the need (0 when it is on time)."""
    return max(0, (available_from + timedelta(days=lead_days) - needed_by).days)


def handover_by(available_from: date, needed_by: date, lead_days: int) -> date:
    return max(needed_by, available_from + timedelta(days=lead_days))
