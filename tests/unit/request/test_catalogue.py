"""The shipped reference data and the rules for adding catalogue items (pure)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from services.request.domain import CatalogueItem
from shared.catalogue import CAPABILITIES, base_items, nations, normalise_nation
from shared.contracts.requests import CatalogueItemAdded
from shared.domain import DomainError

UNITS = {
    "rounds", "missiles", "systems", "batteries", "vehicles", "drones", "seats", "packages",
    "vessels", "devices", "charges", "rockets", "aircraft", "kits", "munitions", "terminals",
    "radios", "licences",
}  # fmt: skip


def test_the_base_catalogue_covers_every_coalition_with_sane_items() -> None:
    items = base_items()
    assert len(items) >= 60
    per_capability = Counter(item.capability for item in items.values())
    assert set(per_capability) == set(CAPABILITIES)
    assert min(per_capability.values()) >= 5
    for item in items.values():
        assert item.unit in UNITS, item
        assert item.eum_class in ("none", "routine", "enhanced"), item


def test_the_first_codes_are_kept_for_the_other_services() -> None:
    first = {
        "AD-PATRIOT-PAC3", "AD-PATRIOT-GEMT", "AD-IRIST-SLM", "ART-155-HE", "ART-155-HE-ER",
        "ARM-LEO2A4", "AF-F16-SPARES", "DR-FPV-KIT", "DM-MINE-ROLLER", "MAR-USV",
        "IT-SECURE-LAPTOP",
    }  # fmt: skip
    assert first <= set(base_items())
    assert base_items()["AD-IRIST-SLM"].substitutes == ()


def test_substitutes_exist_share_unit_and_capability_and_are_symmetric() -> None:
    items = base_items()
    for item in items.values():
        for code in item.substitutes:
            other = items[code]
            assert code != item.code
            assert (other.unit, other.capability) == (item.unit, item.capability), item
            assert item.code in other.substitutes, f"{code} does not name {item.code} back"


def test_nations_are_iso_alpha2_accepting_lower_case() -> None:
    assert len(nations()) == 249
    assert normalise_nation("pl") == "PL"
    assert normalise_nation(" De ") == "DE"
    assert normalise_nation("XX") is None
    assert normalise_nation("POL") is None


def add(code: str = "AD-CAMM", **kw: object) -> CatalogueItem:
    args: dict[str, Any] = {
        "code": code,
        "name": "CAMM interceptor",
        "capability": "air_defence",
        "unit": "missiles",
        "eum_class": "enhanced",
        "substitutes": [],
        "known": base_items(),
    } | kw
    return CatalogueItem.add(**args)


def test_adding_an_item_records_it_on_its_own_stream() -> None:
    entry = add(substitutes=["AD-ASTER30", "AD-ASTER30"])
    assert entry.id == "catalogue-AD-CAMM"
    [event] = entry.pending
    assert isinstance(event, CatalogueItemAdded)
    assert event.substitutes == ["AD-ASTER30"]
    assert entry.item is not None and entry.item.unit == "missiles"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"code": "ART-155-HE"}, "already has an item ART-155-HE"),
        ({"code": "x"}, "not an item code"),
        ({"capability": "space"}, "not one of the capabilities"),
        ({"substitutes": ["NOPE-1"]}, "NOPE-1 is not in the catalogue"),
        ({"substitutes": ["ART-155-HE"]}, "counted in rounds, not missiles"),
    ],
)
def test_adding_an_item_refuses_what_breaks_the_catalogue(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(DomainError, match=message):
        add(**kw)
