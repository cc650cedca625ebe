"""The batch handler's history rows (`consumers.TableHistory`, built straight from the rows) are
the rows the earlier path made from the domain's `History` (a snapshot per version, turned into
the table's tuple afterwards); and `Keys.add`, decided once per event class, names the rows the
earlier chain of class tests named."""

from __future__ import annotations

import random
import uuid
from operator import attrgetter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projection.consumers import HISTORY_COLUMNS, HISTORY_TABLES, TableHistory
from services.projection.domain import Changes, Keys, keys_of
from services.projection.domain.history import History
from shared.contracts.allocations import AllocationProposed, ShortfallRecorded
from shared.contracts.deliveries import ShipmentPlanned
from shared.contracts.requests import (
    CatalogueItemAdded,
    DecisionRecorded,
    PledgeAnnounced,
    RequirementSubmitted,
)
from shared.domain import DomainEvent
from tests.unit.test_history_as_of import Stream, _interleave, worlds


def _old_rows(history: History) -> tuple[dict[type, list[tuple[Any, ...]]], list[tuple[Any, ...]]]:
    """What `ReadModelWriter._write_history` made of a `History` before `TableHistory`."""
    values = {kind: attrgetter(*columns[3:]) for kind, columns in HISTORY_COLUMNS.items()}
    versions: dict[type, list[tuple[Any, ...]]] = {kind: [] for kind in HISTORY_TABLES}
    for v in history.versions:
        versions[type(v.row)].append((v.at, v.event_type, v.event_id, *values[type(v.row)](v.row)))
    flows = [
        (f.at, f.event_type, f.requirement_id, f.pledged, f.allocated, f.in_transit,
         f.delivered_shipments, f.open_shortfall, f.shortfall_reason)
        for f in history.flows
    ]  # fmt: skip
    return versions, flows


def _batches(events: Stream, rng: random.Random) -> list[Stream]:
    out, i = [], 0
    while i < len(events):
        size = rng.randint(1, 8)
        out.append(events[i : i + size])
        i += size
    return out


@settings(max_examples=200, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_table_history_rows_equal_the_rows_made_from_history(
    streams: list[Stream], rng: random.Random
) -> None:
    events = _interleave(streams, rng)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in events]
    # Batches as the handler sees them: rows loaded (carried over) from the earlier batches.
    old, new = Changes({}, {}, {}, {}, {}), Changes({}, {}, {}, {}, {}, TableHistory())
    done = 0
    for batch in _batches(events, rng):
        old = Changes(old.requirements, old.pledges, old.allocations, old.shipments,
                      old.decisions)  # fmt: skip
        new = Changes(new.requirements, new.pledges, new.allocations, new.shipments,
                      new.decisions, TableHistory())  # fmt: skip
        for (event, subject, at), event_id in zip(batch, ids[done:], strict=False):
            assert old.apply(event, subject, at, event_id) == new.apply(
                event, subject, at, event_id
            )
        done += len(batch)
        versions, flows = _old_rows(old.history)
        assert new.history.versions == versions
        assert new.history.flows == flows
    assert old.requirements == new.requirements and old.shipments == new.shipments


def _old_keys(events: list[tuple[DomainEvent, str]]) -> Keys:
    """`Keys.add` as it was: a chain of class tests and type-name prefixes per event."""
    keys = Keys()
    for event, subject in events:
        match event:
            case DecisionRecorded():
                keys.decisions.add(event.decision_id)
            case PledgeAnnounced():
                keys.pledges.add(event.pledge_id)
            case CatalogueItemAdded():
                pass
            case DomainEvent() if event.TYPE.startswith("pledge."):
                keys.pledges.add(subject)
            case RequirementSubmitted():
                keys.requirements.add(event.requirement_id)
            case DomainEvent() if event.TYPE.startswith("requirement."):
                keys.requirements.add(subject)
            case AllocationProposed():
                keys.allocations.add(event.allocation_id)
                keys.requirements.add(event.requirement_id)
            case ShortfallRecorded():
                keys.requirements.add(event.requirement_id)
            case DomainEvent() if event.TYPE.startswith("allocation."):
                keys.allocations.add(subject)
            case ShipmentPlanned():
                keys.shipments.add(event.shipment_id)
                keys.requirements.add(event.requirement_id)
            case DomainEvent() if event.TYPE.startswith("shipment."):
                keys.shipments.add(subject)
    return keys


@settings(max_examples=100, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_keys_decided_per_class_are_the_keys_of_the_chain(
    streams: list[Stream], rng: random.Random
) -> None:
    events = [(event, subject) for event, subject, _at in _interleave(streams, rng)]
    events.append(
        (
            CatalogueItemAdded(item_code="X", name="x", capability="c", unit="u", eum_class="none"),
            "X",
        )
    )
    assert keys_of(events) == _old_keys(events)
