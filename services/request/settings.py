"""Settings of the request service (environment variables; see README)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class RequestSettings(ServiceSettings):
    service_name: str = "request"
    port: int = Field(default=8001, ge=1, le=65535, validation_alias="REQUEST_PORT")
    # Pledge imports of 5,000+ rows with long source links need more than the shared 1 MB.
    max_body_bytes: int = Field(default=4_000_000, ge=1024)
