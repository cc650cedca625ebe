"""The allocation service's HTTP contract: request bodies and the views it answers with."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.allocation.domain import Candidate
from shared.web.paging import ListPage

Status = Literal["proposed", "approved", "rejected", "cancelled"]


class RejectBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "Route via PL-RZE is saturated until March"}]},
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why the planner rejects it")


_HELD = "null when held back from the caller's role (docs/access.md); `redacted` is then true"


class AllocationOut(BaseModel):
    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    lost: int = Field(description="Units lost in transit (they no longer cover the need)")
    hub: str
    handover_by: date
    status: Status
    rationale: str | None = Field(None, description="Why it was proposed; " + _HELD)
    reason: str | None = Field(None, description="Why it was rejected or cancelled; " + _HELD)
    approved_by: str | None = Field(None, description=_HELD)
    version: int
    redacted: bool = False


class AllocationPage(ListPage[AllocationOut]):
    """Allocations, a page at a time (the list envelope)."""


class PlacedOut(BaseModel):
    """A live allocation of the requirement's item family."""

    allocation_id: str
    requirement_id: str
    pledge_id: str
    item_code: str
    quantity: int
    approved_by: str | None = Field(None, description="None while proposed, or " + _HELD)
    hub: str | None = None
    handover_by: date | None = None


class ShortfallOut(BaseModel):
    open_quantity: int
    reason: str | None = Field(None, description=_HELD)


class CoverageOut(BaseModel):
    """Why a requirement is or is not covered (`domain.Coverage`, as the caller may see it)."""

    requirement_id: str
    item_code: str
    status: str
    priority: int
    needed_by: date
    quantity: int
    approved: int
    proposed: int
    open: int
    summary: str
    allocations: list[PlacedOut]
    candidates: list[Candidate]
    shortfall: ShortfallOut | None
    redacted: bool = False
