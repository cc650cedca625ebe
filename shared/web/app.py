"""The FastAPI app every service is built from: lifespan, probes, metrics, problem+json."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp

from shared.auth import TokenVerifier
from shared.contracts.docs import asyncapi_yaml
from shared.observability.http import RequestObservability
from shared.runtime import ServiceRuntime, readiness_status
from shared.settings import ServiceSettings
from shared.web.api_docs import install_api_docs
from shared.web.headers import SecurityHeaders
from shared.web.limits import BodySizeLimit
from shared.web.openapi import describe
from shared.web.problems import install_problem_handlers
from shared.web.ratelimit import RateLimiter
from shared.web.storable import storable_text

# FastAPI's own OpenTelemetry instrumentation, off: `RequestObservability` measures and logs
# every request (Prometheus, JSON logs), and no OpenTelemetry provider is configured, which
# FastAPI checked on every request (3.2 against 0.1 µs; docs/benchmarks.md "Tenth session").
NO_OPENTELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not ready"]
    checks: dict[str, dict[str, Any]]


class AidlineApp(FastAPI):
    """FastAPI with request observability outermost, around Starlette's own error middleware,
    so even an unexpected 500 is counted, carries the correlation id and logs it."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestObservability(super().build_middleware_stack())


def token_verifier(settings: ServiceSettings) -> TokenVerifier:
    """The verifier the settings describe; a bad key file fails here, at startup."""
    return TokenVerifier.from_files(
        secret=settings.jwt_secret,
        public_key_file=settings.jwt_public_key_file,
        jwks_file=settings.jwt_jwks_file,
        jwks_url=str(settings.jwt_jwks_url) if settings.jwt_jwks_url else None,
        jwks_cache_seconds=settings.jwt_jwks_cache_seconds,
        jwks_cooldown_seconds=settings.jwt_jwks_cooldown_seconds,
        leeway=settings.jwt_leeway_seconds,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def create_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    handler_deps: object = None,
) -> FastAPI:
    """`handler_deps`: what the service's command handlers get as `ctx.deps`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = AidlineApp(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(storable_text)],
        docs_url=None,
        redoc_url=None,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.runtime = runtime
    app.state.handler_deps = handler_deps
    settings = runtime.settings
    app.state.verifier = token_verifier(settings)
    app.state.rate_limiter = RateLimiter(
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
        enabled=settings.rate_limit_enabled,
    )
    install_problem_handlers(app)
    install_api_docs(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database answers (200: ready, or degraded with Kafka or a consumer down)",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: the database is down"}},
    )
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        status = readiness_status(checks)
        return JSONResponse(
            {"status": status, "checks": checks},
            status_code=503 if status == "not ready" else 200,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        await runtime.refresh_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The producers publish their own topic's events; the projection, which reads them all,
    # publishes the whole document.
    topics = [runtime.topic] if runtime.topic else None

    @app.get(
        "/asyncapi.yaml",
        tags=["operations"],
        summary="The event catalogue (AsyncAPI 3.0)",
        response_class=Response,
        responses={200: {"content": {"application/yaml": {"schema": {"type": "object"}}}}},
    )
    async def asyncapi() -> Response:
        return Response(asyncapi_yaml(topics), media_type="application/yaml")

    for router in routers:
        app.include_router(router)
    describe(app)
    return app
