"""Settings of the delivery service (environment variables; see README)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    service_name: str = "delivery"
    port: int = Field(default=8003, ge=1, le=65535, validation_alias="DELIVERY_PORT")
