"""What the request service's endpoints accept and answer (pydantic; examples feed OpenAPI).

Field constraints answer bad input with 422 naming the field; the domain re-checks its own
invariants. Unknown fields are refused (`extra="forbid"`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.types import Strict

from services.request.commands import utc_today
from services.request.domain import MAX_QUANTITY
from shared.catalogue import CAPABILITIES, EumClass, normalise_nation
from shared.contracts.requests import PledgeSource
from shared.web.paging import ListPage


def _not_past(value: date) -> date:
    if value < utc_today():
        raise ValueError(f"must be today or later (UTC), not {value.isoformat()}")
    return value


def _not_future(value: date) -> date:
    # One day of slack: a meeting's date in Kyiv or Washington may be "tomorrow" in UTC.
    if value > utc_today() + timedelta(days=1):
        raise ValueError("a decision is recorded after its meeting, not before")
    return value


def _happened(value: date) -> date:
    # Business time: a day something happened, recorded since; one day of slack as for meetings.
    if value > utc_today() + timedelta(days=1):
        raise ValueError("a day to come: it is recorded after it happened, not before")
    if value.year < 2000:
        raise ValueError("must be 2000-01-01 or later")
    return value


def _nation(value: str) -> str:
    code = normalise_nation(value)
    if code is None:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _model(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ItemCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{1,39}$"
    ),
]
Quantity = Annotated[int, Strict(), Field(ge=1, le=MAX_QUANTITY)]
Priority = Annotated[int, Strict(), Field(ge=1, le=4, description="1 critical … 4 routine")]
Nation = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=2, max_length=2),
    AfterValidator(_nation),
]
ValueEur = Annotated[float, Strict(), Field(ge=0, le=1e12, allow_inf_nan=False)]
Url = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^https?://\S+$")
]
RequirementId = Annotated[str, StringConstraints(pattern=r"^REQ-[0-9A-Z]{1,40}$")]
PledgeId = Annotated[str, StringConstraints(pattern=r"^PLG-[0-9A-Z]{1,40}$")]
FutureDate = Annotated[date, AfterValidator(_not_past)]
MeetingDate = Annotated[date, AfterValidator(_not_future)]
HappenedOn = Annotated[date, AfterValidator(_happened)]


# -- requirements ------------------------------------------------------------------------


class RequirementIn(BaseModel):
    model_config = _model(
        {
            "item_code": "ART-155-HE",
            "quantity": 20000,
            "priority": 1,
            "needed_by": "2030-03-31",
            "destination": "Operational Command East, Dnipro",
            "justification": "Counter-battery fire in the east; stocks last 3 weeks.",
        }
    )
    item_code: ItemCode
    quantity: Quantity
    priority: Priority
    needed_by: FutureDate
    destination: Text
    justification: LongText
    stated_on: HappenedOn | None = Field(
        None,
        description="The day the need was stated (business time: the requirement's "
        "`occurred_at`); default today",
    )


class EndorseIn(BaseModel):
    model_config = _model({"priority": 1, "reference": "UDCG-25 follow-up"})
    priority: Priority | None = Field(None, description="Re-rank; omit to keep the recipient's")
    reference: Text | None = Field(None, description="The meeting or note deciding it")
    meeting_date: MeetingDate | None = Field(None, description="Defaults to today")


class AmendIn(BaseModel):
    model_config = _model({"quantity": 25000, "needed_by": "2030-04-30"})
    quantity: Quantity | None = None
    priority: Priority | None = None
    needed_by: FutureDate | None = None

    @model_validator(mode="after")
    def _something(self) -> AmendIn:
        if self.quantity is None and self.priority is None and self.needed_by is None:
            raise ValueError("name at least one of quantity, priority, needed_by")
        return self


class ReasonIn(BaseModel):
    model_config = _model({"reason": "Covered by a national contract."})
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


_HELD = "null when held back from the caller's role (docs/access.md); `redacted` is then true"


class RequirementView(BaseModel):
    id: str
    version: int
    status: str
    item_code: str
    unit: str
    quantity: int
    priority: int
    needed_by: date
    destination: str
    justification: str | None = Field(None, description=_HELD)
    decision_id: str | None
    delivered: int
    deliveries: dict[str, int] | None = Field(
        None, description="shipment id -> quantity delivered; " + _HELD
    )
    cancel_reason: str | None = Field(None, description=_HELD)
    redacted: bool = False


# -- pledges -----------------------------------------------------------------------------


class PledgeIn(BaseModel):
    model_config = _model(
        {
            "donor": "PL",
            "item_code": "ART-155-HE",
            "quantity": 5000,
            "source": "stock",
            "available_from": "2030-01-15",
            "value_eur": 22500000,
            "source_url": "https://www.gov.pl/web/national-defence",
        }
    )
    donor: Nation = Field(description="ISO 3166-1 alpha-2; must be your token's nation")
    item_code: ItemCode
    quantity: Quantity
    source: PledgeSource
    available_from: date
    value_eur: ValueEur | None = None
    source_url: Url | None = None
    announced_on: HappenedOn | None = Field(
        None,
        description="The day the donor announced it (business time: the pledge's "
        "`occurred_at`, what the chart and ledgers date it by); default today",
    )


class ConfirmIn(BaseModel):
    model_config = _model({"reference": "UDCG-25", "meeting_date": "2026-02-12"})
    reference: Text | None = None
    meeting_date: MeetingDate | None = None


class ReduceIn(BaseModel):
    model_config = _model({"quantity": 3000})
    quantity: Quantity = Field(description="The pledge's new total")


class PledgeView(BaseModel):
    id: str
    version: int
    status: str
    donor: str
    item_code: str
    unit: str
    quantity: int
    source: str
    available_from: date
    value_eur: float | None
    source_url: str | None
    decision_id: str | None
    withdraw_reason: str | None = Field(None, description=_HELD)
    redacted: bool = False


# -- decisions ---------------------------------------------------------------------------


class EndorsementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requirement_id: RequirementId
    priority: Priority | None = None


class DecisionIn(BaseModel):
    model_config = _model(
        {
            "meeting_date": "2026-02-12",
            "reference": "UDCG-25",
            "endorse": [{"requirement_id": "REQ-01JABCDEF0123456789ABCDEFG", "priority": 1}],
            "confirm": ["PLG-01JABCDEF0123456789ABCDEFG"],
        }
    )
    meeting_date: MeetingDate
    reference: Text
    endorse: list[EndorsementIn] = Field(default_factory=list, max_length=500)
    confirm: list[PledgeId] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _something(self) -> DecisionIn:
        if not self.endorse and not self.confirm:
            raise ValueError("a decision endorses a requirement or confirms a pledge")
        return self


class DecisionView(BaseModel):
    id: str
    version: int
    meeting_date: date
    reference: str
    endorsed: list[dict[str, Any]]
    confirmed: list[str]


# -- catalogue ---------------------------------------------------------------------------


class CatalogueItemIn(BaseModel):
    model_config = _model(
        {
            "code": "AD-CAMM",
            "name": "CAMM interceptor",
            "capability": "air_defence",
            "unit": "missiles",
            "eum_class": "enhanced",
            "substitutes": [],
        }
    )
    code: ItemCode
    name: Text
    capability: Literal[CAPABILITIES]  # type: ignore[valid-type]
    unit: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z][A-Za-z ]{0,29}$"
        ),
    ]
    eum_class: EumClass = "none"
    substitutes: list[ItemCode] = Field(default_factory=list, max_length=20)


class CatalogueItemView(BaseModel):
    item_code: str
    name: str
    capability: str
    unit: str
    eum_class: str
    substitutes: list[str]
    origin: Literal["base", "added"]


class CatalogueItemPage(ListPage[CatalogueItemView]):
    """The item catalogue, by item code (the list envelope)."""


# -- answers -----------------------------------------------------------------------------


class CommandOut(BaseModel):
    id: str
    version: int
    event_id: str | None


class DecidedOut(CommandOut):
    decision_id: str


class ImportRow(BaseModel):
    row: int = Field(description="Line in the file (the header is line 1)")
    status: Literal["stored", "duplicate", "rejected"]
    pledge_id: str | None = None
    note: str | None = Field(None, description="Why a row is a duplicate")
    errors: list[dict[str, str]] = Field(default_factory=list)


class ImportOut(BaseModel):
    stored: int
    duplicates: int
    rejected: int
    rows: list[ImportRow]


class StreamEvent(BaseModel):
    position: int
    stream_version: int
    event_id: str
    type: str
    schema_version: int
    recorded_at: datetime
    actor: str | None = None  # left out for roles that do not see people (docs/access.md)
    correlation_id: str | None
    causation_id: str | None
    data: dict[str, Any]
    redacted: bool = False


class StreamOut(BaseModel):
    stream_id: str
    version: int
    events: list[StreamEvent]
