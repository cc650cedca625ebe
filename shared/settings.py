"""Settings every service shares; each service subclasses this with its own prefix and port."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.auth.tokens import DEV_SECRET

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///.aidline/data/aidline.db"


class ServiceSettings(BaseSettings):
    """One pydantic-settings class per service, read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "aidline"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # One URL for the whole deployment; each service keeps its tables in its own schema
    # (PostgreSQL) or its own file (SQLite), so no service can touch another's tables.
    database_url: str = DEFAULT_SQLITE_URL
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    environment: str = Field(default="development", pattern="^(development|test|production)$")
    migrate_on_start: bool = True
    relay_enabled: bool = True
    consumers_enabled: bool = True
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Prepended to consumer group names, so parallel test runs on one broker stay apart.
    consumer_group_prefix: str = ""
    consumer_max_attempts: int = Field(default=3, ge=1, le=100)
    # A consumer that has not polled for this long is reported as not ready.
    consumer_stall_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "INFO"
    # json | text | auto (text in development, JSON otherwise); see docs/operations.md.
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")
    # HS256 secret (development) or an RS256 public key file (deployments).
    jwt_secret: str = DEV_SECRET
    jwt_public_key_file: Path | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)

    @model_validator(mode="after")
    def _no_development_secret_outside_development(self) -> ServiceSettings:
        weak_secret = not self.jwt_secret or self.jwt_secret == DEV_SECRET
        if self.environment == "production" and not self.jwt_public_key_file and weak_secret:
            raise ValueError(
                "refusing to start in production with the development JWT secret (or none): "
                "set JWT_SECRET or JWT_PUBLIC_KEY_FILE"
            )
        return self

    @property
    def development(self) -> bool:
        return self.environment != "production"
