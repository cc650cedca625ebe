"""Reference data every service shares: the item catalogue, the logistics hubs, the nations.

The base catalogue ships with the project (`items.json`); admins add items over HTTP, which the
request service publishes as `catalogue.item_added` so the other services learn them too.
`nations.json` is ISO 3166-1 alpha-2 (taken from the tz database's public-domain iso3166.tab).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

_HERE = Path(__file__).parent

CAPABILITIES = (
    "air_defence",
    "artillery",
    "armour",
    "air_force",
    "drones",
    "demining",
    "maritime",
    "it",
)

EumClass = Literal["none", "routine", "enhanced"]


@dataclass(frozen=True)
class Item:
    code: str
    name: str
    capability: str
    unit: str
    eum_class: EumClass = "none"  # end-use monitoring: enhanced items need serials
    substitutes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Hub:
    code: str
    name: str
    country: str
    # Capabilities whose items this hub handles; empty means every capability.
    capabilities: tuple[str, ...]
    handover_point: str


@cache
def base_items() -> dict[str, Item]:
    raw = json.loads((_HERE / "items.json").read_text())
    return {
        row["code"]: Item(
            code=row["code"],
            name=row["name"],
            capability=row["capability"],
            unit=row["unit"],
            eum_class=row.get("eum_class", "none"),
            substitutes=tuple(row.get("substitutes", ())),
        )
        for row in raw
    }


@cache
def hubs() -> dict[str, Hub]:
    raw = json.loads((_HERE / "hubs.json").read_text())
    return {
        row["code"]: Hub(
            code=row["code"],
            name=row["name"],
            country=row["country"],
            capabilities=tuple(row.get("capabilities", ())),
            handover_point=row["handover_point"],
        )
        for row in raw
    }


@cache
def nations() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> English name."""
    raw: dict[str, str] = json.loads((_HERE / "nations.json").read_text(encoding="utf-8"))
    return raw


def normalise_nation(code: str) -> str | None:
    """The upper-case ISO 3166-1 alpha-2 code, or None when `code` is not one."""
    upper = code.strip().upper()
    return upper if upper in nations() else None
