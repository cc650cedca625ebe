"""Every endpoint of every service, with every role: generated from the routes and their rules.

For each service app (built like `python -m services.<name>` builds it, on a throwaway SQLite
file, with the relay and consumers off, so no Kafka is needed):

- a route that names no access rule (`Depends(Authorize(POLICY, "rule"))`) must be on the
  public allowlist below, or the test fails naming it;
- every route that names a rule is called with no token and a tampered token (401), and with a
  token of each role: a role outside the rule gets 403, a role inside it anything but 401/403
  (dummy ids and an empty JSON body make 404/409/422 the usual answers) and never a 500.

Nation and hub scopes depend on the resource a route loads, so they are tested beside each
service's own routes (see docs/security.md, "Scopes"); here path parameters named `nation` and
`hub` are filled with the caller's own, so a scope check never hides a wrong role rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from starlette.convertors import FloatConvertor, IntegerConvertor, UUIDConvertor

from services.access_docs import service_policy
from shared.auth import DEV_SECRET, AccessPolicy, Principal, Role, TokenVerifier, rule
from shared.web.access import AppRoute, app_routes
from shared.web.deps import Authorize
from shared.web.problems import Problem, install_problem_handlers
from tests.authkit import HUB, NATION, token

SERVICES = ("request", "allocation", "delivery", "projection")

# Routes anyone may call. Adding one here is a security decision: say why beside it.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",  # liveness probe
        "/readyz",  # readiness probe (no data beyond component health)
        "/metrics",  # Prometheus scrape
        "/docs",  # OpenAPI UI (Swagger UI) and its start-up script
        "/docs/swagger-init.js",
        "/redoc",
        "/problems",  # what each problem type means (the `type` of problem+json answers)
        "/openapi.json",
        "/asyncapi.json",  # the event catalogue (public contract)
        "/asyncapi.yaml",
        "/",  # the projection's dashboard page: its data comes from authorised endpoints
        "/dev/token",  # development only: the dashboard's observer token (404 in production)
    }
)
# Dashboard assets; the API docs pages' assets (Swagger UI, ReDoc); JSON Schema per event type.
PUBLIC_PREFIXES = ("/static", "/docs/assets", "/problems/", "/schemas/")


# -- walking an app ----------------------------------------------------------------------------


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def unprotected_routes(app: FastAPI) -> list[str]:
    """Routes that name no access rule and are not on the public allowlist."""
    return [
        f"{','.join(route.methods) or '*'} {route.path}"
        for route in app_routes(app)
        if not route.guards and not _is_public(route.path)
    ]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    url: str
    roles: frozenset[Role]  # who may call it: the intersection of its rules
    rules: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def protected_endpoints(app: FastAPI) -> list[Endpoint]:
    endpoints = []
    for route in app_routes(app):
        if not route.guards:
            continue
        roles = frozenset(Role).intersection(*(guard.rule.roles for guard in route.guards))
        rules = tuple(guard.name for guard in route.guards)
        url = route.url(**_sample_params(route))
        endpoints += [Endpoint(m, route.path, url, roles, rules) for m in route.methods]
    return endpoints


def _sample_params(route: AppRoute) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, convertor in route.param_convertors.items():
        if isinstance(convertor, IntegerConvertor | FloatConvertor):
            values[name] = 0
        elif isinstance(convertor, UUIDConvertor):
            values[name] = uuid.UUID(int=0)
        else:
            values[name] = {"nation": NATION, "hub": HUB}.get(name, "x-access-matrix")
    return values


# -- calling an app ----------------------------------------------------------------------------


async def status_of(app: FastAPI, method: str, url: str, headers: dict[str, str]) -> int:
    """The status an app answers with, without waiting for the body: streams (SSE) never end."""
    body = b"{}" if method in {"POST", "PUT", "PATCH"} else b""
    headers = headers | {"content-type": "application/json", "content-length": str(len(body))}
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    disconnected = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    path, _, query = url.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "client": ("127.0.0.1", 50000),
        "server": ("access-matrix", 80), "state": {},
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        waiting: set[asyncio.Future[Any]] = {task, started}
        await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if started.done():
            return started.result()
        if task.done():
            task.result()
        pytest.fail(f"{method} {url} sent no response within 30 s")
    finally:
        disconnected.set()
        if not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)


def callers() -> dict[str, tuple[dict[str, str], Role | None]]:
    """Each kind of caller: its headers and its role (None: must be refused with 401)."""
    everything = token(*Role, sub="matrix-tampered")
    header, payload, _ = everything.split(".")
    foreign = token(*Role, sub="matrix-tampered", secret="not-our-secret-" * 3)
    cases: dict[str, tuple[dict[str, str], Role | None]] = {
        "no token": ({}, None),
        "tampered token": ({"Authorization": f"Bearer {header}.{payload}.{_sig(foreign)}"}, None),
    }
    for role in Role:
        cases[str(role)] = ({"Authorization": f"Bearer {token(role, sub=f'matrix-{role}')}"}, role)
    return cases


def _sig(value: str) -> str:
    return value.rsplit(".", 1)[1]


async def check_endpoint(app: FastAPI, endpoint: Endpoint) -> list[str]:
    """What is wrong with one endpoint's answers, one line per caller."""
    wrong = []
    for name, (headers, role) in callers().items():
        status = await status_of(app, endpoint.method, endpoint.url, headers)
        if role is None:
            expected = "401"
            ok = status == 401
        elif role in endpoint.roles:
            expected = "not 401/403/500"
            ok = status not in (401, 403, 500)
        else:
            expected = "403"
            ok = status == 403
        if not ok:
            wrong.append(f"{endpoint.id} ({', '.join(endpoint.rules)}): {name} got {status}, "
                         f"expected {expected}")  # fmt: skip
    return wrong


# -- the services ------------------------------------------------------------------------------


def _app_module(service: str) -> Any:
    return importlib.import_module(f"services.{service}.app")


def build_service_app(service: str, data: Path) -> FastAPI:
    module = _app_module(service)
    settings_class = type(module.app.state.runtime.settings)
    settings = settings_class(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{data}/matrix.db",
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        environment="test",
        migrate_on_start=True,
        relay_enabled=False,
        consumers_enabled=False,
        consumer_group_prefix=f"matrix-{uuid.uuid4().hex[:8]}-",
        rate_limit_enabled=False,  # the matrix calls each route many times on purpose
    )
    app: FastAPI = module.build_app(settings)
    return app


@pytest.fixture(scope="module")
async def apps(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, FastAPI]]:
    built: dict[str, FastAPI] = {}
    contexts = []
    try:
        for service in SERVICES:
            app = build_service_app(service, tmp_path_factory.mktemp(service))
            context = app.router.lifespan_context(app)
            await context.__aenter__()
            contexts.append(context)
            built[service] = app
        yield built
    finally:
        for context in reversed(contexts):
            await context.__aexit__(None, None, None)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_names_an_access_rule_or_is_public(service: str) -> None:
    unprotected = unprotected_routes(_app_module(service).app)
    assert not unprotected, (
        f"{service}: these routes name no access rule (Depends(Authorize(POLICY, 'rule'))) and "
        f"are not on the public allowlist: {unprotected}"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_rule_of_the_policy_guards_a_route(service: str) -> None:
    used = {guard for route in app_routes(_app_module(service).app) for guard in route.guards}
    policy = service_policy(service)
    if policy is None:
        assert not used, f"services/{service}/access.py (the service's AccessPolicy) is missing"
        return
    assert all(a.policy is policy for a in used), f"{service} routes use another service's rules"
    unused = sorted(set(policy) - {a.name for a in used})
    assert not unused, (
        f"{service}: rules that guard no route (drop them or add the route): {unused}"
    )


@pytest.mark.parametrize("service", SERVICES)
async def test_each_role_gets_what_the_rules_say(apps: dict[str, FastAPI], service: str) -> None:
    app = apps[service]
    wrong = [
        line
        for endpoint in protected_endpoints(app)
        for line in await check_endpoint(app, endpoint)
    ]
    assert not wrong, f"{service}:\n" + "\n".join(wrong)


# -- the walker catches what it must -----------------------------------------------------------

SELF_TEST_POLICY = AccessPolicy(
    "self-test",
    {
        "things.read": rule(*Role, description="anyone signed in"),
        "things.plan": rule(Role.PLANNER, Role.ADMIN, description="planners"),
    },
)


Planner = Annotated[Principal, Depends(Authorize(SELF_TEST_POLICY, "things.plan"))]
Reader = Annotated[Principal, Depends(Authorize(SELF_TEST_POLICY, "things.read"))]


def _throwaway_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)  # as the services: shared/web/api_docs.py
    app.state.verifier = TokenVerifier(secret=DEV_SECRET)
    install_problem_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {}

    @app.post("/things/{thing_id}/plan")
    async def plan(thing_id: str, principal: Planner) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/things/{thing_id}")
    async def read(thing_id: str, principal: Reader) -> dict[str, str]:
        if principal.has(Role.OBSERVER):  # a handler that refuses a role its rule allows
            raise Problem(403, "Forbidden")
        return {"id": thing_id}

    @app.get("/things/{thing_id}/stream")
    async def stream(thing_id: str, principal: Reader) -> StreamingResponse:
        async def forever() -> AsyncIterator[bytes]:  # like SSE: ends only on disconnect
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(forever(), media_type="text/event-stream")

    @app.delete("/things/{thing_id}")
    async def forgot_the_rule(thing_id: str) -> None:
        return None

    return app


def test_the_walker_names_a_route_without_a_rule() -> None:
    assert unprotected_routes(_throwaway_app()) == ["DELETE /things/{thing_id}"]


def test_the_cases_come_from_the_rules() -> None:
    endpoints = {e.id: e for e in protected_endpoints(_throwaway_app())}
    assert set(endpoints) == {
        "POST /things/{thing_id}/plan",
        "GET /things/{thing_id}",
        "GET /things/{thing_id}/stream",
    }
    assert endpoints["POST /things/{thing_id}/plan"].roles == {Role.PLANNER, Role.ADMIN}
    assert endpoints["GET /things/{thing_id}"].url == "/things/x-access-matrix"


async def test_the_matrix_passes_routes_that_keep_their_rules_even_endless_streams() -> None:
    app = _throwaway_app()
    for endpoint in protected_endpoints(app):
        if endpoint.path != "/things/{thing_id}":
            assert await check_endpoint(app, endpoint) == [], endpoint.id


async def test_the_matrix_flags_a_route_that_breaks_its_rule() -> None:
    app = _throwaway_app()
    [read] = [e for e in protected_endpoints(app) if e.path == "/things/{thing_id}"]
    assert await check_endpoint(app, read) == [
        "GET /things/{thing_id} (things.read): observer got 403, expected not 401/403/500"
    ]
