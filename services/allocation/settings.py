"""Settings of the allocation service (environment variables; see docs/allocation.md)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class AllocationSettings(ServiceSettings):
    service_name: str = "allocation"
    port: int = Field(default=8002, ge=1, le=65535, validation_alias="ALLOCATION_PORT")
    # AUTO_APPROVE: proposals are approved as they are made (approved_by "auto-approve").
    auto_approve: bool = False
    # HANDOVER_LEAD_DAYS: days from a pledge's availability to handover at the border; decides
    # whether a pledge is on time for a need and the handover-by date of late ones.
    handover_lead_days: int = Field(default=7, ge=0, le=365)
