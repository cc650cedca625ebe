"""Settings of the allocation service (environment variables; see README)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class AllocationSettings(ServiceSettings):
    service_name: str = "allocation"
    port: int = Field(default=8002, ge=1, le=65535, validation_alias="ALLOCATION_PORT")
