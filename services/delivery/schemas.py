"""The delivery service's HTTP contract: the milestone bodies, and the same as batch rows.

A single route takes e.g. `Dispatch` with the shipment in the path; a batch row is the same
milestone with `row_id`, `shipment_id`, `at` (when it happened) and `milestone` naming it. Each
becomes its command (`commands.py`).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from services.delivery import commands
from shared.contracts.deliveries import InspectionResult, TransportMode
from shared.web.commands import canonical_json
from shared.web.paging import ListPage
from shared.web.problems import field_errors

# Serial numbers are sized so that the largest command and the events it derives fit in one
# Kafka message (KAFKA_MAX_MESSAGE_BYTES, 1 MiB) on either backend: at most 5,000 per dispatch,
# handover or loss, each 1-100 visible ASCII characters (inner spaces allowed; no `"` or `\`,
# which JSON would escape) takes at most 104 bytes in an event, so even a handover whose
# discrepancy names every dispatched serial missing and every given one unexpected (10,000)
# stays under 1,041,000 bytes with its envelope (tests/integration/delivery/test_event_size.py).
MAX_SERIALS = 5_000
Serial = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[ !#-\[\]-~]+$"
    ),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
CarrierRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _example(example: dict[str, Any]) -> ConfigDict:
    """Strict bodies, with an example for the OpenAPI document."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


class MilestoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @abstractmethod
    def command(self, shipment_id: str, *, on: date) -> commands.Milestone:
        """The milestone's command; `on` is the day it is reported (a delay's ETA needs it)."""


class Dispatch(MilestoneBody):
    model_config = _example(
        {"mode": "road", "carrier_ref": "PL-TIR-20931", "serials": ["S1", "S2"]}
    )

    mode: TransportMode
    carrier_ref: CarrierRef
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)

    def command(self, shipment_id: str, *, on: date) -> commands.Dispatch:
        return commands.Dispatch(shipment_id, self.mode, self.carrier_ref, tuple(self.serials))


class Arrive(MilestoneBody):
    def command(self, shipment_id: str, *, on: date) -> commands.Arrive:
        return commands.Arrive(shipment_id)


class Inspect(MilestoneBody):
    model_config = _example({"result": "held", "notes": "Seal on crate 3 broken; count again"})

    result: InspectionResult
    notes: Annotated[str, StringConstraints(max_length=2000)] = ""

    def command(self, shipment_id: str, *, on: date) -> commands.Inspect:
        return commands.Inspect(shipment_id, self.result, self.notes)


class Depart(MilestoneBody):
    def command(self, shipment_id: str, *, on: date) -> commands.Depart:
        return commands.Depart(shipment_id)


class Handover(MilestoneBody):
    model_config = _example(
        {"received_good": 10, "damaged": 1, "short": 1, "serials": ["S1", "S2"]}
    )

    received_good: int = Field(ge=0, le=10_000_000)
    damaged: int = Field(ge=0, le=10_000_000)
    short: int = Field(ge=0, le=10_000_000)
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)

    def command(self, shipment_id: str, *, on: date) -> commands.Handover:
        return commands.Handover(
            shipment_id, self.received_good, self.damaged, self.short, tuple(self.serials)
        )


class Receive(MilestoneBody):
    def command(self, shipment_id: str, *, on: date) -> commands.Receive:
        return commands.Receive(shipment_id)


class Delay(MilestoneBody):
    model_config = _example({"reason": "Border queue at Korczowa", "new_eta": "2026-12-20"})

    reason: Text
    new_eta: date

    def command(self, shipment_id: str, *, on: date) -> commands.Delay:
        return commands.Delay(shipment_id, self.reason, self.new_eta, reported_on=on)


class ReportLoss(MilestoneBody):
    model_config = _example(
        {"quantity": 2, "reason": "Damaged in a road accident", "serials": ["S7"]}
    )

    quantity: int = Field(gt=0, le=10_000_000)
    reason: Text
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)

    def command(self, shipment_id: str, *, on: date) -> commands.ReportLoss:
        return commands.ReportLoss(shipment_id, self.quantity, self.reason, tuple(self.serials))


# -- batch rows -------------------------------------------------------------------------------


# A milestone's business time (its events' `ce_occurredat`): reported after it happened (a day
# of slack for a device's clock), and from this century; so every read model can store it.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SLACK = timedelta(days=1)


def _happened(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SLACK:
        raise ValueError("a time to come: a milestone is reported after it happened")
    if value < EARLIEST:
        raise ValueError("must be 2000-01-01 or later")
    return value


class Row(BaseModel):
    row_id: Id  # the row's idempotency key: a re-sent row is applied once
    shipment_id: Id
    # When it happened on the ground; rows are applied in this order.
    at: Annotated[AwareDatetime, AfterValidator(_happened)]


class DispatchRow(Dispatch, Row):
    milestone: Literal["dispatch"]


class ArriveRow(Arrive, Row):
    milestone: Literal["arrive"]


class InspectRow(Inspect, Row):
    milestone: Literal["inspect"]


class DepartRow(Depart, Row):
    milestone: Literal["depart"]


class HandoverRow(Handover, Row):
    milestone: Literal["handover"]


class ReceiveRow(Receive, Row):
    milestone: Literal["receive"]


class DelayRow(Delay, Row):
    milestone: Literal["delay"]


class ReportLossRow(ReportLoss, Row):
    milestone: Literal["report_loss"]


BatchRow = Annotated[
    DispatchRow
    | ArriveRow
    | InspectRow
    | DepartRow
    | HandoverRow
    | ReceiveRow
    | DelayRow
    | ReportLossRow,
    Field(discriminator="milestone"),
]
BATCH_ROW: TypeAdapter[BatchRow] = TypeAdapter(BatchRow)
MAX_BATCH_ROWS = 500


class MilestoneBatch(BaseModel):
    """Rows are validated one by one, so one malformed row does not refuse the others."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rows": [
                        {"row_id": "rze-1", "shipment_id": "SHP-01J9Z3", "milestone": "arrive",
                         "at": "2026-12-02T06:40:00+01:00"},
                        {"row_id": "rze-2", "shipment_id": "SHP-01J9Z3", "milestone": "inspect",
                         "at": "2026-12-02T08:15:00+01:00", "result": "passed"},
                    ]
                }
            ]
        }
    )  # fmt: skip

    rows: list[dict[str, object]] = Field(
        min_length=1,
        max_length=MAX_BATCH_ROWS,
        description=(
            "Each row: row_id (its idempotency key), shipment_id, at (when it happened, RFC 3339 "
            "with a time zone), milestone (dispatch, arrive, inspect, depart, handover, receive, "
            "delay, report_loss) and that milestone's fields as in its single route's body. "
            "See docs/delivery.md."
        ),
    )

    def command(self) -> commands.MilestoneBatch:
        return commands.MilestoneBatch(tuple(parse_row(raw) for raw in self.rows))


def parse_row(raw: dict[str, object]) -> commands.BatchRow | commands.InvalidRow:
    try:
        row = BATCH_ROW.validate_python(raw)
    except ValidationError as exc:
        return commands.InvalidRow(raw, tuple(row_errors(exc)))
    digest = hashlib.sha256(canonical_json(row.model_dump(mode="json"))).hexdigest()
    command = row.command(row.shipment_id, on=row.at.date())
    return commands.BatchRow(row.row_id, row.at, command, digest)


def row_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Field errors named within the row (pydantic puts the milestone's tag first)."""
    errors = []
    for error in exc.errors():
        tag_error = error["type"] in ("union_tag_invalid", "union_tag_not_found")
        errors.append({**error, "loc": ("milestone",) if tag_error else error["loc"][1:]})
    return field_errors(errors)


class RowResult(BaseModel):
    """One row's outcome: applied (with the shipment's version and event), replayed (the same
    row again: its first answer) or rejected (the problem, RFC 9457 members)."""

    index: int
    row_id: str | None  # None where the row was too malformed to name them
    shipment_id: str | None
    milestone: str | None
    status: Literal["applied", "replayed", "rejected"]
    code: int
    applied_as: int | None = None
    version: int | None = None
    event_id: str | None = None
    type: str | None = None
    title: str | None = None
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchOut(BaseModel):
    results: list[RowResult]
    applied: int
    replayed: int
    rejected: int


class HandoverOut(BaseModel):
    received_good: int
    damaged: int
    short: int


class DiscrepancyOut(BaseModel):
    missing: list[str]
    unexpected: list[str]


class ShipmentView(BaseModel):
    """A shipment as the caller may see it: what the visibility table holds back from the
    caller's role is left out, and `redacted` is then true (docs/access.md)."""

    shipment_id: str
    version: int
    status: str
    allocation_id: str | None = None
    requirement_id: str | None = None
    pledge_id: str | None = None
    donor: str | None = None
    item_code: str | None = None
    eum_class: str | None = None
    quantity: int | None = None
    lost: int | None = None
    remaining: int | None = None
    hub: str | None = None
    handover_point: str | None = None
    mode: str | None = None
    carrier_ref: str | None = None
    eta: date | None = None
    delayed: bool | None = None
    delay_reason: str | None = None
    inspection_notes: str | None = None
    handover: HandoverOut | None = None
    serials: list[str] | None = None
    lost_serials: list[str] | None = None
    handover_serials: list[str] | None = None
    eum_discrepancy: DiscrepancyOut | None = None
    cancel_reason: str | None = None
    redacted: bool = False


class ShipmentPage(ListPage[ShipmentView]):
    """Shipments the caller may see, a page at a time (the list envelope)."""
