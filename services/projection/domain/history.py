"""The read models' history by business time (pure): what the projector records beside the rows
so that the state as it stood at any date is an indexed aggregate, not a replay.

Two kinds of record, both dated by the event's business time (`occurred_at`):

- a `Version`: a row as its own stream's event left it. Pledges, allocations, shipments and
  decisions are changed by their own stream only, and a requirement's own fields (what was
  asked, its priority, endorsement, cancellation) by the requirement's stream only; a stream is
  read in order, so its versions do not depend on how the topics interleave. As of a date, a
  row is its last version (in stream order) dated on or before it.
- a `Flow`: what another stream changed in a requirement's figures (pledged, allocated, in
  transit, handed over), as a difference. An allocation's or shipment's contribution depends
  on its own stream alone, so each difference does too; as of a date, a figure is the sum of
  the differences dated on or before it, whatever order they arrived in. A shortfall (the
  planner's, from no stream of the requirement's own) is a Flow that sets the open quantity:
  the latest by business time counts.

`as_of` folds records into rows the way the SQL of `services/projection/as_of.py` does; the
property test checks both against the projector run on the events dated up to the cutoff.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.projection.domain.model import (
    Allocation,
    Decision,
    Pledge,
    Requirement,
    Row,
    Shipment,
)

# The kind of row each stream's events change as that row's own stream (the first part of the
# event type). `shortfall.*` and `catalogue.*` have no row of their own.
OWN_ROW: dict[str, type[Row]] = {
    "requirement": Requirement,
    "pledge": Pledge,
    "allocation": Allocation,
    "shipment": Shipment,
    "decision": Decision,
}

# A requirement's fields that only its own stream changes (kept in its versions); the others are
# sums of flows (and `status`, `updated_at` follow from both).
REQUIREMENT_OWN = (
    "requirement_id", "item_code", "unit", "priority", "needed_by", "destination", "requested",
    "delivered_recorded", "endorsed", "cancelled", "fulfilled", "submitted_at", "decision_id",
)  # fmt: skip
FLOW_FIGURES = ("pledged", "allocated", "in_transit", "delivered_shipments")


@dataclass(frozen=True)
class Version:
    """`row` as the event `event_type` left it, from `at` (business time) on."""

    row: Row
    event_type: str
    at: datetime
    event_id: UUID | None = None


@dataclass(frozen=True)
class Flow:
    """A difference another stream's event made to a requirement's figures, from `at` on; or,
    with `open_shortfall` set, the planner's open shortfall (and why) from `at` on."""

    requirement_id: str
    event_type: str
    at: datetime
    pledged: int = 0
    allocated: int = 0
    in_transit: int = 0
    delivered_shipments: int = 0
    open_shortfall: int | None = None
    shortfall_reason: str | None = None


class Recorder(Protocol):
    """Where the projector records a batch's history (`History`, or the batch handler's rows
    for the tables: `services.projection.consumers.TableHistory`)."""

    def version(self, row: Row, event_type: str, at: datetime, event_id: UUID | None) -> None:
        """`row` as `event_type` (of its own stream) left it; the row changes on afterwards."""

    def flow(
        self,
        requirement_id: str,
        event_type: str,
        at: datetime,
        pledged: int = 0,
        allocated: int = 0,
        in_transit: int = 0,
        delivered_shipments: int = 0,
        open_shortfall: int | None = None,
        shortfall_reason: str | None = None,
    ) -> None:
        """A `Flow` (its fields)."""


@dataclass
class History:
    """The records of a batch, in the order the projector made them."""

    versions: list[Version] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)

    def version(self, row: Row, event_type: str, at: datetime, event_id: UUID | None) -> None:
        # A copy: the row changes on with the batch's later events. (Its fields copied by hand:
        # copy.copy takes twice as long, once per event applied.)
        snapshot = object.__new__(type(row))
        snapshot.__dict__.update(row.__dict__)
        self.versions.append(Version(snapshot, event_type, at, event_id))

    def flow(
        self,
        requirement_id: str,
        event_type: str,
        at: datetime,
        pledged: int = 0,
        allocated: int = 0,
        in_transit: int = 0,
        delivered_shipments: int = 0,
        open_shortfall: int | None = None,
        shortfall_reason: str | None = None,
    ) -> None:
        self.flows.append(
            Flow(requirement_id, event_type, at, pledged, allocated, in_transit,
                 delivered_shipments, open_shortfall, shortfall_reason)
        )  # fmt: skip


@dataclass
class AsOf:
    """Rows as they stood at a cutoff, by kind and key."""

    requirements: dict[str, Requirement] = field(default_factory=dict)
    pledges: dict[str, Pledge] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)


def as_of(versions: Iterable[Version], flows: Iterable[Flow], cutoff: datetime) -> AsOf:
    """The rows as they stood before `cutoff`: each row's last version dated before it (versions
    come in the order recorded, which is each stream's order), a requirement's figures the sum of
    its flows dated before it, its open shortfall the latest dated before it. A requirement shows
    once its own stream has a version (a submission) before the cutoff."""
    state = AsOf()
    tables: dict[type[Row], dict[str, Row]] = {
        Requirement: state.requirements,  # type: ignore[dict-item]
        Pledge: state.pledges,  # type: ignore[dict-item]
        Allocation: state.allocations,  # type: ignore[dict-item]
        Shipment: state.shipments,  # type: ignore[dict-item]
        Decision: state.decisions,  # type: ignore[dict-item]
    }
    for v in versions:
        if v.at < cutoff:
            tables[type(v.row)][v.row.key] = copy.copy(v.row)
    sums: dict[str, dict[str, int]] = {}
    shortfalls: dict[str, Flow] = {}
    last_flow: dict[str, datetime] = {}
    for f in flows:
        if f.at >= cutoff:
            continue
        figures = sums.setdefault(f.requirement_id, dict.fromkeys(FLOW_FIGURES, 0))
        for name in FLOW_FIGURES:
            figures[name] += getattr(f, name)
        if f.open_shortfall is not None:
            known = shortfalls.get(f.requirement_id)
            if known is None or f.at >= known.at:
                shortfalls[f.requirement_id] = f
        last_flow[f.requirement_id] = max(f.at, last_flow.get(f.requirement_id, f.at))
    last_version = {
        v.row.key: v.at for v in versions if v.at < cutoff and isinstance(v.row, Requirement)
    }
    for key, r in state.requirements.items():
        own = Requirement(key, **{name: getattr(r, name) for name in REQUIREMENT_OWN[1:]})
        for name, value in sums.get(key, {}).items():
            setattr(own, name, value)
        shortfall = shortfalls.get(key)
        if shortfall is not None:
            own.open_shortfall, own.shortfall_reason = (
                shortfall.open_shortfall,
                shortfall.shortfall_reason,
            )
        own.refresh(max(last_version[key], last_flow.get(key, last_version[key])))
        state.requirements[key] = own
    return state
