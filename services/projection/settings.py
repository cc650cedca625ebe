"""Settings of the projection service (environment variables; see README and docs/projection.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.contracts.topics import ALLOCATIONS, DELIVERIES, REQUESTS
from shared.settings import ServiceSettings


class ProjectionSettings(ServiceSettings):
    service_name: str = "projection"
    port: int = Field(default=8004, ge=1, le=65535, validation_alias="PROJECTION_PORT")
    # The base schema: holds the generation pointer; each generation's read models live in
    # `<schema>_g<n>` (PostgreSQL schema, or SQLite file).
    projection_schema: str = Field(default="projection", pattern="^[a-z_][a-z0-9_]{0,50}$")
    # The topics it reads (other names only for benchmarks and isolated tests).
    requests_topic: str = REQUESTS
    allocations_topic: str = ALLOCATIONS
    deliveries_topic: str = DELIVERIES
    # Messages per poll: large batches keep replay fast (one transaction per partition batch).
    projection_batch_size: int = Field(default=2000, ge=1, le=50_000)
    # Processes replaying a rebuild on PostgreSQL, the service's own included (see
    # services/projection/rebuild.py); SQLite always replays in one.
    projection_rebuild_processes: int = Field(default=2, ge=1, le=8)
    # How long `after_event=` waits for the event to be applied before answering 504.
    read_your_writes_timeout: float = Field(default=5.0, gt=0, le=60)
    # Recent events kept in memory for live-stream resumption; older ones come from the audit
    # table. About 2.7 kB each: 10,000 would hold 27 MB for what a query also answers.
    stream_buffer_size: int = Field(default=1_000, ge=100, le=1_000_000)
    # The live stream's bounds (docs/projection.md, "The live stream"): how far back a resume
    # may reach (older: 410), streams open per principal and in all (more: 429), how long a
    # stream ticket is good for.
    stream_max_resume_events: int = Field(default=10_000, ge=0, le=100_000)
    stream_max_per_principal: int = Field(default=8, ge=1, le=1000)
    stream_max_total: int = Field(default=500, ge=1, le=100_000)
    stream_ticket_seconds: float = Field(default=60, gt=0, le=600)
    # Signs stream tickets; the same on every instance, so any takes another's ticket. Unset:
    # derived from JWT_SECRET where tokens are HS256 (shared already), else each instance has
    # one of its own (tickets then open streams on the issuing instance only: logged).
    stream_ticket_secret: SecretStr | None = Field(default=None, min_length=32)
    # `GET /dev/token` hands the dashboard an observer token: only with ENVIRONMENT=development,
    # an HS256 secret, and to a client on this machine (the route checks the address).
    dev_token_enabled: bool = True

    @property
    def dev_tokens_handed_out(self) -> bool:
        keyed = self.jwt_public_key_file or self.jwt_jwks_file or self.jwt_jwks_url
        return self.environment == "development" and self.dev_token_enabled and not keyed

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> the catalogue's own topic name."""
        return {
            self.requests_topic: REQUESTS,
            self.allocations_topic: ALLOCATIONS,
            self.deliveries_topic: DELIVERIES,
        }
