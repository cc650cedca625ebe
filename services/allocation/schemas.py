"""The allocation service's HTTP contract: request bodies and the views it answers with."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["proposed", "approved", "rejected", "cancelled"]


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="Why the planner rejects it")


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
    rationale: str
    reason: str | None
    approved_by: str | None
    version: int


class AllocationPage(BaseModel):
    items: list[AllocationOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
