"""Settings of the projection service (environment variables; see README)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class ProjectionSettings(ServiceSettings):
    service_name: str = "projection"
    port: int = Field(default=8004, ge=1, le=65535, validation_alias="PROJECTION_PORT")
