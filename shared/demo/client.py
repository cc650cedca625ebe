"""A small HTTP client of the four services, acting with development tokens for any role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from shared.auth import Role, mint_token

T = TypeVar("T")


class DemoError(RuntimeError):
    pass


class Conflict(DemoError):
    """409: the resource moved on (e.g. the plan changed under a planner's approval)."""


@dataclass
class Endpoints:
    request: str = "http://127.0.0.1:8001"
    allocation: str = "http://127.0.0.1:8002"
    delivery: str = "http://127.0.0.1:8003"
    projection: str = "http://127.0.0.1:8004"


@dataclass
class AidlineClient:
    secret: str
    endpoints: Endpoints = field(default_factory=Endpoints)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    def token(self, role: Role, *, nation: str | None = None, hub: str | None = None) -> str:
        sub = {Role.DONOR: f"mod-{(nation or 'xx').lower()}", Role.HUB: f"ops-{hub}"}.get(
            role, f"demo-{role}"
        )
        return mint_token(self.secret, sub, [role], nation=nation, hub=hub, ttl_seconds=3600)

    def headers(self, role: Role, **scope: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **scope)}"}

    async def post(
        self, service: str, path: str, body: dict[str, Any], role: Role, **scope: str | None
    ) -> dict[str, Any]:
        # A deterministic key per call site would replay; a fresh one per call is what a UI sends.
        headers = self.headers(role, **scope) | {"Idempotency-Key": str(uuid.uuid4())}
        response = await self.http.post(
            getattr(self.endpoints, service) + path, json=body, headers=headers
        )
        if response.status_code >= 400:
            error = Conflict if response.status_code == 409 else DemoError
            raise error(f"POST {service}{path} -> {response.status_code}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def get(self, service: str, path: str, role: Role, **scope: str | None) -> Any:
        response = await self.http.get(
            getattr(self.endpoints, service) + path, headers=self.headers(role, **scope)
        )
        if response.status_code >= 400:
            raise DemoError(f"GET {service}{path} -> {response.status_code}: {response.text}")
        return response.json()

    async def close(self) -> None:
        await self.http.aclose()


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, what: str, within: float = 60.0
) -> T:
    """Poll until `probe` returns something (events travel through Kafka between services)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if result is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.25)
