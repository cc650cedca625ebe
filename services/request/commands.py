"""The request service's commands, one per state-changing route: what the caller asks for,
built by the route from the path and the body (no HTTP or pydantic here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from shared.catalogue import EumClass
from shared.contracts.requests import PledgeSource


def utc_today() -> date:
    """The day a forum decision defaults to, and the one the HTTP contract checks dates against."""
    return datetime.now(UTC).date()


# -- requirements ------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitRequirement:
    item_code: str
    quantity: int
    priority: int
    needed_by: date
    destination: str
    justification: str
    stated_on: date | None = None  # business time: the day the need was stated (else today)


@dataclass(frozen=True)
class EndorseRequirement:
    """A one-off forum decision endorsing one requirement; `priority` None keeps the recipient's."""

    requirement_id: str
    priority: int | None = None
    reference: str = "one-off endorsement"
    meeting_date: date = field(default_factory=utc_today)


@dataclass(frozen=True)
class AmendRequirement:
    requirement_id: str
    quantity: int | None = None
    priority: int | None = None
    needed_by: date | None = None


@dataclass(frozen=True)
class CancelRequirement:
    requirement_id: str
    reason: str


# -- pledges -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncePledge:
    donor: str
    item_code: str
    quantity: int
    source: PledgeSource
    available_from: date
    value_eur: float | None = None
    source_url: str | None = None
    announced_on: date | None = None  # business time: the day it was announced (else today)


@dataclass(frozen=True)
class ConfirmPledge:
    """A one-off forum decision confirming one pledge."""

    pledge_id: str
    reference: str = "one-off confirmation"
    meeting_date: date = field(default_factory=utc_today)


@dataclass(frozen=True)
class ReducePledge:
    pledge_id: str
    quantity: int  # the pledge's new total


@dataclass(frozen=True)
class WithdrawPledge:
    pledge_id: str
    reason: str


# -- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endorsement:
    requirement_id: str
    priority: int | None = None


@dataclass(frozen=True)
class RecordDecision:
    """One meeting's endorsements and confirmations, stored all or nothing."""

    meeting_date: date
    reference: str
    endorse: Sequence[Endorsement] = ()
    confirm: Sequence[str] = ()  # pledge ids


# -- catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCatalogueItem:
    code: str
    name: str
    capability: str
    unit: str
    eum_class: EumClass = "none"
    substitutes: Sequence[str] = ()


# -- imports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PledgeRow:
    """One data row of a pledge CSV: the pledge it states, or (`pledge` None) what it gets
    wrong. `line` is the row's line in the file; the header is line 1."""

    line: int
    pledge: AnnouncePledge | None
    errors: Sequence[Mapping[str, str]] = ()


@dataclass(frozen=True)
class ImportPledges:
    rows: Sequence[PledgeRow]
