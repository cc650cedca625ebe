"""The milestone commands as request bodies, and the same commands as rows of a batch upload.

A single route takes e.g. `Dispatch` with the shipment in the path; a batch row is the same
command with `row_id`, `shipment_id`, `at` (when it happened) and `milestone` naming it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from shared.contracts.deliveries import InspectionResult, TransportMode

MAX_SERIALS = 10_000
Serial = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
CarrierRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Milestone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    MILESTONE: ClassVar[str]


class Dispatch(Milestone):
    MILESTONE = "dispatch"
    mode: TransportMode
    carrier_ref: CarrierRef
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)


class Arrive(Milestone):
    MILESTONE = "arrive"


class Inspect(Milestone):
    MILESTONE = "inspect"
    result: InspectionResult
    notes: Annotated[str, StringConstraints(max_length=2000)] = ""


class Depart(Milestone):
    MILESTONE = "depart"


class Handover(Milestone):
    MILESTONE = "handover"
    received_good: int = Field(ge=0, le=10_000_000)
    damaged: int = Field(ge=0, le=10_000_000)
    short: int = Field(ge=0, le=10_000_000)
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)


class Receive(Milestone):
    MILESTONE = "receive"


class Delay(Milestone):
    MILESTONE = "delay"
    reason: Text
    new_eta: date


class ReportLoss(Milestone):
    MILESTONE = "report_loss"
    quantity: int = Field(gt=0, le=10_000_000)
    reason: Text
    serials: list[Serial] = Field(default_factory=list, max_length=MAX_SERIALS)


# -- batch rows -------------------------------------------------------------------------------


class Row(BaseModel):
    row_id: Id  # the row's idempotency key: a re-sent row is applied once
    shipment_id: Id
    at: AwareDatetime  # when it happened on the ground; rows are applied in this order


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
