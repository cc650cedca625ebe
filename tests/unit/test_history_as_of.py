"""As of a date, from the history the projector records (domain/history.py), is the state the
projector reaches from the events dated before that date alone, applied in business order —
whatever order the streams' events arrive in (each stream in its own order, the streams
interleaved at random), so a fact recorded late with an earlier business date counts at its
date."""

from __future__ import annotations

import random
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projection.domain import Changes
from services.projection.domain.history import History, as_of
from services.projection.domain.model import Row
from shared.contracts.allocations import (
    AllocationApproved,
    AllocationProposed,
    AllocationRejected,
    ShortfallRecorded,
)
from shared.contracts.deliveries import (
    ShipmentArrivedAtHub,
    ShipmentDelayed,
    ShipmentDispatched,
    ShipmentHandedOver,
    ShipmentLost,
    ShipmentPlanned,
    ShipmentReceived,
)
from shared.contracts.requests import (
    DecisionRecorded,
    Endorsement,
    PledgeAnnounced,
    PledgeConfirmed,
    RequirementAmended,
    RequirementCancelled,
    RequirementEndorsed,
    RequirementSubmitted,
)
from shared.domain import DomainEvent

START = datetime(2025, 1, 1, tzinfo=UTC)
ITEM = "ART-155-HE"
Stream = list[tuple[DomainEvent, str, datetime]]


def _at(day: float) -> datetime:
    return START + timedelta(days=day)


def _stream(subject: str, first: float, *events: DomainEvent, gaps: list[float]) -> Stream:
    """A stream's events, dated in its order from `first` on, `gaps` days apart."""
    out, day = [], first
    for i, e in enumerate(events):
        out.append((e, subject, _at(day)))
        day += gaps[i % len(gaps)]
    return out


@st.composite
def worlds(draw: st.DrawFn) -> list[Stream]:
    gaps = draw(st.lists(st.floats(0.1, 5.0), min_size=1, max_size=6))
    requirements, pledges = ["R1", "R2"], ["P1", "P2"]
    streams: list[Stream] = []
    for i, rid in enumerate(requirements):
        events: list[DomainEvent] = [
            RequirementSubmitted(
                requirement_id=rid, item_code=ITEM, quantity=draw(st.integers(1, 200)),
                unit="rounds", priority=3, needed_by=date(2026, 1, 1), destination="Lviv",
                justification="-",
            ),
            RequirementEndorsed(priority=draw(st.integers(1, 4)), decision_id="DEC-1"),
        ]  # fmt: skip
        if draw(st.booleans()):
            events.append(RequirementAmended(quantity=draw(st.integers(1, 200)), priority=2))
        if i == 1 and draw(st.booleans()):
            events.append(RequirementCancelled(reason="-"))
        streams.append(_stream(rid, draw(st.floats(0, 10)), *events, gaps=gaps))
    for pid in pledges:
        announced = PledgeAnnounced(
            pledge_id=pid, donor="DE", item_code=ITEM, quantity=300, unit="rounds",
            source="stock", available_from=date(2025, 1, 1),
        )  # fmt: skip
        streams.append(
            _stream(pid, draw(st.floats(0, 10)), announced,
                    PledgeConfirmed(decision_id="DEC-1"), gaps=gaps)
        )  # fmt: skip
    decision = DecisionRecorded(
        decision_id="DEC-1", meeting_date=date(2025, 1, 15), reference="-",
        endorsed=[Endorsement(requirement_id=r, priority=1) for r in requirements],
        confirmed=pledges,
    )  # fmt: skip
    streams.append(_stream("DEC-1", 14, decision, gaps=gaps))
    for n in range(draw(st.integers(1, 4))):
        aid, rid, pid = f"A{n}", requirements[n % 2], pledges[n % 2]
        quantity = draw(st.integers(1, 100))
        proposed = AllocationProposed(
            allocation_id=aid, requirement_id=rid, pledge_id=pid, item_code=ITEM,
            quantity=quantity, hub="PL-RZE", handover_by=date(2026, 1, 1), rationale="-",
        )  # fmt: skip
        approved = draw(st.booleans())
        verdict = (
            AllocationApproved(approved_by="p") if approved else AllocationRejected(reason="-")
        )
        streams.append(_stream(aid, draw(st.floats(15, 30)), proposed, verdict, gaps=gaps))
        if not approved:
            continue
        sid = f"S{n}"
        moves: list[DomainEvent] = [
            ShipmentPlanned(
                shipment_id=sid, allocation_id=aid, requirement_id=rid, pledge_id=pid,
                donor="DE", item_code=ITEM, quantity=quantity, hub="PL-RZE",
                handover_point="Korczowa",
            ),
            ShipmentDispatched(mode="road", carrier_ref="T"),
        ]  # fmt: skip
        ending = draw(st.sampled_from(["handover", "delay", "loss", "moving"]))
        if ending == "handover":
            good = draw(st.integers(0, quantity))
            moves += [
                ShipmentArrivedAtHub(hub="PL-RZE"),
                ShipmentHandedOver(received_good=good, damaged=quantity - good, short=0),
                ShipmentReceived(),
            ]
        elif ending == "delay":
            moves.append(ShipmentDelayed(reason="-", new_eta=date(2026, 2, 1)))
        elif ending == "loss":
            moves.append(ShipmentLost(quantity=draw(st.integers(1, quantity)), reason="-"))
        streams.append(_stream(sid, draw(st.floats(35, 60)), *moves, gaps=gaps))
    for n in range(draw(st.integers(0, 2))):  # shortfalls of two planning runs
        shortfall = ShortfallRecorded(
            requirement_id="R2", open_quantity=10 * (n + 1), reason=f"{n}"
        )
        streams.append(_stream(f"PLAN-{n}", 20 + 7 * n, shortfall, gaps=gaps))
    return streams


def _interleave(streams: list[Stream], rng: random.Random) -> Stream:
    """The streams' events merged at random, each stream in its own order."""
    queues = [list(s) for s in streams if s]
    out: Stream = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return out


def _project(events: Stream) -> Changes[History]:
    changes = Changes({}, {}, {}, {}, {})
    for event, subject, at in events:
        changes.apply(event, subject, at)
    return changes


def _rows(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # `updated_at` is the latest applied in the live rows, the latest counted as of a date
    return {k: {f: v for f, v in r.as_row().items() if f != "updated_at"} for k, r in table.items()}


def _tables(state: Any) -> dict[str, dict[str, dict[str, Any]]]:
    names = ("requirements", "pledges", "allocations", "shipments", "decisions")
    return {name: _rows(getattr(state, name)) for name in names}


@settings(max_examples=150, deadline=None)
@given(worlds(), st.randoms(use_true_random=False), st.floats(0, 80))
def test_as_of_is_the_projection_of_the_facts_dated_before_whatever_the_arrival_order(
    streams: list[Stream], rng: random.Random, cutoff_day: float
) -> None:
    cutoff = _at(cutoff_day)
    # what the projector reaches from the facts dated before the cutoff alone, applied in the
    # order they happened (each stream's order is its business order)
    dated = sorted((e for s in streams for e in s if e[2] < cutoff), key=lambda e: e[2])
    expected = _tables(_project(dated))
    # a requirement is on the board as of a date once submitted by then
    expected["requirements"] = {
        k: r for k, r in expected["requirements"].items() if r["submitted_at"] is not None
    }
    for _ in range(2):
        changes = _project(_interleave(streams, rng))
        state = as_of(changes.history.versions, changes.history.flows, cutoff)
        got = _tables(state)
        differing = [
            (table, key, f, rows.get(key, {}).get(f), expected[table][key].get(f))
            for table, rows in got.items()
            for key in rows.keys() | expected[table].keys()
            for f in (rows.get(key) or expected[table].get(key) or {})
            if rows.get(key, {}).get(f) != expected[table].get(key, {}).get(f)
        ]
        assert not differing, differing


def test_every_row_kind_is_versioned_by_its_own_stream_only() -> None:
    """An allocation changes its requirement's figures (a flow), never its version."""
    changes = _project(
        _stream(
            "R1", 0,
            RequirementSubmitted(
                requirement_id="R1", item_code=ITEM, quantity=5, unit="u", priority=1,
                needed_by=date(2026, 1, 1), destination="-", justification="-",
            ),
            gaps=[1],
        )
        + _stream(
            "A1", 2,
            AllocationProposed(
                allocation_id="A1", requirement_id="R1", pledge_id="P1", item_code=ITEM,
                quantity=5, hub="PL-RZE", handover_by=date(2026, 1, 1), rationale="-",
            ),
            AllocationApproved(approved_by="p"),
            gaps=[1],
        )
    )  # fmt: skip
    kinds = [(type(v.row).__name__, v.event_type) for v in changes.history.versions]
    assert kinds == [
        ("Requirement", "requirement.submitted"),
        ("Allocation", "allocation.proposed"),
        ("Allocation", "allocation.approved"),
    ]
    flows = [(f.event_type, f.pledged, f.allocated) for f in changes.history.flows]
    assert flows == [("allocation.proposed", 5, 0), ("allocation.approved", 0, 5)]


def test_a_version_is_a_copy_of_the_row_as_the_event_left_it() -> None:
    changes = _project(
        _stream(
            "P1", 0,
            PledgeAnnounced(
                pledge_id="P1", donor="de", item_code=ITEM, quantity=10, unit="u",
                source="stock", available_from=date(2025, 1, 1),
            ),
            PledgeConfirmed(decision_id="DEC-1"),
            gaps=[1],
        )
    )  # fmt: skip
    statuses = [v.row.status for v in changes.history.versions]  # type: ignore[attr-defined]
    assert statuses == ["announced", "confirmed"]
    assert all(isinstance(v.row, Row) for v in changes.history.versions)
    assert {f.name for f in fields(changes.history.versions[0].row)} >= {"pledge_id", "donor"}
