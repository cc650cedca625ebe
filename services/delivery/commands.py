"""The delivery service's commands: one per milestone, and the batch upload of many milestones.

Each milestone command names its shipment; `MILESTONE` is the milestone's name in a batch row and
in the access rules (`access.MILESTONE_RULES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from shared.contracts.deliveries import InspectionResult, TransportMode


@dataclass(frozen=True)
class Dispatch:
    MILESTONE: ClassVar[str] = "dispatch"
    shipment_id: str
    mode: TransportMode
    carrier_ref: str
    serials: tuple[str, ...] = ()


@dataclass(frozen=True)
class Arrive:
    MILESTONE: ClassVar[str] = "arrive"
    shipment_id: str


@dataclass(frozen=True)
class Inspect:
    MILESTONE: ClassVar[str] = "inspect"
    shipment_id: str
    result: InspectionResult
    notes: str = ""


@dataclass(frozen=True)
class Depart:
    MILESTONE: ClassVar[str] = "depart"
    shipment_id: str


@dataclass(frozen=True)
class Handover:
    MILESTONE: ClassVar[str] = "handover"
    shipment_id: str
    received_good: int
    damaged: int
    short: int
    serials: tuple[str, ...] = ()


@dataclass(frozen=True)
class Receive:
    MILESTONE: ClassVar[str] = "receive"
    shipment_id: str


@dataclass(frozen=True)
class Delay:
    MILESTONE: ClassVar[str] = "delay"
    shipment_id: str
    reason: str
    new_eta: date
    reported_on: date  # the new ETA may not be before it: today, or a batch row's day


@dataclass(frozen=True)
class ReportLoss:
    MILESTONE: ClassVar[str] = "report_loss"
    shipment_id: str
    quantity: int
    reason: str
    serials: tuple[str, ...] = ()


Milestone = Dispatch | Arrive | Inspect | Depart | Handover | Receive | Delay | ReportLoss


# -- the batch upload -------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRow:
    """A row that matches its milestone's schema. `row_id` is its idempotency key (per uploader);
    `digest` fingerprints its content, so a row id reused for other content is refused."""

    row_id: str
    at: datetime  # when it happened on the ground; rows are applied in this order
    command: Milestone
    digest: str

    @property
    def milestone(self) -> str:
        return self.command.MILESTONE


@dataclass(frozen=True)
class InvalidRow:
    """A row that does not match its milestone's schema: rejected naming the fields at fault."""

    raw: Mapping[str, object]
    errors: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class MilestoneBatch:
    rows: tuple[BatchRow | InvalidRow, ...]  # in upload order; each is answered on its own
