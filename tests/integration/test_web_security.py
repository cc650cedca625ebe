"""The shared web security plumbing over HTTP, in an app built by `create_app` like every
service's: 401/403 answers, body cap, page sizes, rate limit, correlation ids."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from jwt.algorithms import RSAAlgorithm
from pydantic import BaseModel

from shared.auth import AccessPolicy, Principal, Role, require_own_hub, require_own_nation, rule
from shared.auth.tokens import KeyConfigError
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.web.app import create_app
from shared.web.correlation import event_metadata
from shared.web.deps import Authorize, PageDep
from shared.web.problems import PROBLEM_JSON
from shared.web.ratelimit import RateLimit
from tests.authkit import OTHER_HUB, OTHER_NATION, bearer, private_pem, rsa_key, token
from tests.infra import eventually

MIGRATIONS = Path(__file__).parents[2] / "services" / "request" / "migrations"
MAX_BODY = 2048

POLICY = AccessPolicy(
    "test",
    {
        "things.read": rule(*Role, description="read"),
        "things.create": rule(Role.PLANNER, description="create"),
        "nations.act": rule(Role.DONOR, Role.ADMIN, description="act for a nation"),
        "hubs.act": rule(Role.HUB, Role.PLANNER, description="act at a hub"),
    },
)
Reader = Annotated[Principal, Depends(Authorize(POLICY, "things.read"))]
Creator = Annotated[Principal, Depends(Authorize(POLICY, "things.create"))]


class Thing(BaseModel):
    name: str


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def read(thing_id: str, principal: Reader) -> dict[str, str]:
        return {"id": thing_id, "sub": principal.sub}

    @router.post("/things")
    async def create(thing: Thing, principal: Creator) -> dict[str, int]:
        return {"length": len(thing.name)}

    @router.post("/raw")
    async def raw(request: Request, principal: Reader) -> dict[str, int]:
        return {"length": len(await request.body())}

    @router.post("/nations/{nation}/act")
    async def nation(
        nation: str, principal: Annotated[Principal, Depends(Authorize(POLICY, "nations.act"))]
    ) -> dict[str, str]:
        require_own_nation(principal, nation, unless=(Role.ADMIN,))
        return {"nation": nation}

    @router.post("/hubs/{hub}/act")
    async def hub(
        hub: str, principal: Annotated[Principal, Depends(Authorize(POLICY, "hubs.act"))]
    ) -> dict[str, str]:
        require_own_hub(principal, hub, unless=(Role.PLANNER,))
        return {"hub": hub}

    @router.get("/pages")
    async def pages(principal: Reader, page: PageDep) -> dict[str, Any]:
        return {"limit": page.limit, "offset": page.offset, "after": page.after()}

    @router.post("/imports", dependencies=[Depends(RateLimit(per_minute=1, burst=2))])
    async def imports(principal: Creator) -> dict[str, str]:
        return {"ok": "yes"}

    @router.post("/meta")
    async def meta(request: Request, principal: Reader) -> dict[str, Any]:
        return event_metadata(request, principal).as_dict()

    return router


def _app(tmp_path: Path, **settings: Any) -> FastAPI:
    values: dict[str, Any] = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/t.db"}
    values |= {"max_body_bytes": MAX_BODY} | settings
    runtime = ServiceRuntime(
        ServiceSettings(_env_file=None, **values),
        schema="test",
        migrations=MIGRATIONS,
    )
    return create_app(runtime, title="test", routers=[_router()])


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these routes touch neither the database nor Kafka.
    transport = httpx.ASGITransport(app=_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# -- 401: no token or a bad one ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer "}, {"Authorization": "Basic dTpw"},
     {"Authorization": token(Role.PLANNER)}],
)  # fmt: skip
async def test_no_bearer_token_is_401_with_a_challenge(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/things/T-1", headers=headers)
    assert _problem(response, 401)["type"].endswith("/missing-token")
    assert response.headers["www-authenticate"] == 'Bearer realm="aidline"'


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "mallory", "roles": ["admin"], "iss": "aidline", "aud": "aidline",
              "exp": now + 600} | overrides  # fmt: skip
    return claims


def _swap_payload(signed: str, wanted: str) -> str:
    header, _, signature = signed.split(".")
    return f"{header}.{wanted.split('.')[1]}.{signature}"


TAMPERED = {
    "expired": token(Role.PLANNER, ttl_seconds=-3600),
    "alg none": jwt.encode(_claims(), None, algorithm="none"),  # type: ignore[arg-type]
    "wrong key": jwt.encode(_claims(), "x" * 40, algorithm="HS256"),
    "wrong audience": token(Role.PLANNER, extra={"aud": "elsewhere"}),
    "wrong issuer": token(Role.PLANNER, extra={"iss": "elsewhere"}),
    "malformed": "not.a.jwt",
    "unknown role": token("emperor"),
    "payload swapped": _swap_payload(token(Role.OBSERVER), token(Role.ADMIN)),
}


@pytest.mark.parametrize("case", list(TAMPERED))
async def test_a_bad_token_is_401_invalid_token(client: httpx.AsyncClient, case: str) -> None:
    response = await client.get(
        "/things/T-1", headers={"Authorization": f"Bearer {TAMPERED[case]}"}
    )
    body = _problem(response, 401)
    assert body["type"].endswith("/invalid-token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(
        'Bearer realm="aidline", error="invalid_token", error_description="'
    )
    description = challenge.split('error_description="', 1)[1]
    assert description.endswith('"') and '"' not in description[:-1]


# -- 403: valid token, wrong role, nation or hub -------------------------------------------------


async def test_a_valid_token_without_the_role_is_403(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "x"}, headers=bearer(Role.DONOR))
    body = _problem(response, 403)
    assert body["type"].endswith("/forbidden-role") and "planner" in body["detail"]
    assert "www-authenticate" not in response.headers


async def test_the_right_role_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "abc"}, headers=bearer(Role.PLANNER))
    assert response.json() == {"length": 3}
    response = await client.get("/things/T-1", headers=bearer(Role.OBSERVER, sub="olga"))
    assert response.json() == {"id": "T-1", "sub": "olga"}


async def test_a_donor_acts_for_its_own_nation_only(client: httpx.AsyncClient) -> None:
    own = await client.post("/nations/pl/act", headers=bearer(Role.DONOR))
    assert own.status_code == 200
    other = await client.post("/nations/PL/act", headers=bearer(Role.DONOR, nation=OTHER_NATION))
    assert _problem(other, 403)["type"].endswith("/forbidden-nation")
    admin = await client.post("/nations/PL/act", headers=bearer(Role.ADMIN))
    assert admin.status_code == 200


async def test_a_hub_operator_acts_at_its_own_hub_only(client: httpx.AsyncClient) -> None:
    assert (await client.post("/hubs/PL-RZE/act", headers=bearer(Role.HUB))).status_code == 200
    other = await client.post("/hubs/PL-RZE/act", headers=bearer(Role.HUB, hub=OTHER_HUB))
    assert _problem(other, 403)["type"].endswith("/forbidden-hub")
    planner = await client.post("/hubs/PL-RZE/act", headers=bearer(Role.PLANNER))
    assert planner.status_code == 200


# -- keys for deployments: RS256 through the settings ------------------------------------------


async def test_a_service_configured_with_a_jwks_file_accepts_rs256_only(tmp_path: Path) -> None:
    jwk = RSAAlgorithm.to_jwk(rsa_key().public_key(), as_dict=True) | {"kid": "idp-1"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    app = _app(tmp_path, environment="production", jwt_jwks_file=jwks)
    signed = jwt.encode(_claims(), private_pem(rsa_key()), "RS256", headers={"kid": "idp-1"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get("/things/T-1", headers={"Authorization": f"Bearer {signed}"})
        assert ok.json()["sub"] == "mallory"
        development = await c.get("/things/T-1", headers=bearer(Role.ADMIN))
        assert _problem(development, 401)["detail"].endswith("algorithm is not accepted.")


def test_a_service_with_an_unusable_key_file_refuses_to_start(tmp_path: Path) -> None:
    pem = tmp_path / "public.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyConfigError, match="PEM"):
        _app(tmp_path, environment="production", jwt_public_key_file=pem)


# -- 413: body size cap ------------------------------------------------------------------------


async def _chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.mark.parametrize("path", ["/things", "/raw"])
async def test_a_declared_content_length_over_the_cap_is_413(
    client: httpx.AsyncClient, path: str
) -> None:
    body = json.dumps({"name": "x" * MAX_BODY}).encode()
    response = await client.post(path, content=body, headers=bearer(Role.PLANNER))
    assert _problem(response, 413)["detail"] == f"The request body is limited to {MAX_BODY} bytes."
    assert "x-correlation-id" in response.headers


@pytest.mark.parametrize("path", ["/things", "/raw"])
async def test_a_chunked_body_over_the_cap_is_413(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, content=_chunks(MAX_BODY * 3), headers=bearer(Role.PLANNER))
    assert "content-length" not in response.request.headers
    _problem(response, 413)


async def test_a_chunked_body_under_the_cap_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=_chunks(MAX_BODY), headers=bearer(Role.PLANNER))
    assert response.json() == {"length": MAX_BODY}


# -- page sizes --------------------------------------------------------------------------------


async def test_default_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/pages", headers=bearer(Role.OBSERVER))
    assert response.json() == {"limit": 50, "offset": 0, "after": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "query.limit"), ("limit=501", "query.limit"), ("limit=ten", "query.limit"),
     ("offset=-1", "query.offset"), ("cursor=%21%21", "query.cursor"),
     ("cursor=abc&offset=5", "query.offset")],
)  # fmt: skip
async def test_out_of_range_pages_are_422_naming_the_field(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await client.get(f"/pages?{query}", headers=bearer(Role.OBSERVER))
    assert [e["field"] for e in _problem(response, 422)["errors"]] == [field]


async def test_a_cursor_page(client: httpx.AsyncClient) -> None:
    from shared.web.paging import encode_cursor

    response = await client.get(
        "/pages", params={"limit": 500, "cursor": encode_cursor({"position": 9})},
        headers=bearer(Role.OBSERVER),
    )  # fmt: skip
    assert response.json() == {"limit": 500, "offset": 0, "after": {"position": 9}}


# -- rate limit --------------------------------------------------------------------------------


async def test_a_flood_gets_429_with_retry_after_per_caller(client: httpx.AsyncClient) -> None:
    alice, bob = bearer(Role.PLANNER, sub="alice"), bearer(Role.PLANNER, sub="bob")
    assert [(await client.post("/imports", headers=alice)).status_code for _ in range(2)] == [
        200,
        200,
    ]
    refused = await client.post("/imports", headers=alice)
    assert _problem(refused, 429)["type"].endswith("/rate-limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert (await client.post("/imports", headers=bob)).status_code == 200


async def test_rate_limits_can_be_switched_off(tmp_path: Path) -> None:
    app = _app(tmp_path, rate_limit_enabled=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = {(await c.post("/imports", headers=bearer(Role.PLANNER))).status_code
                 for _ in range(5)}  # fmt: skip
    assert codes == {200}


# -- correlation ids and the actor -------------------------------------------------------------


async def test_event_metadata_names_the_actor_and_the_ids(client: httpx.AsyncClient) -> None:
    headers = bearer(Role.DONOR, sub="warsaw-1") | {"X-Correlation-ID": "forum-2026-04"}
    response = await client.post("/meta", headers=headers)
    assert response.headers["x-correlation-id"] == "forum-2026-04"
    assert response.json() == {
        "actor": "warsaw-1@PL",
        "correlation_id": "forum-2026-04",
        "causation_id": response.headers["x-request-id"],
    }


async def test_without_a_correlation_id_the_request_id_is_used(client: httpx.AsyncClient) -> None:
    response = await client.post("/meta", headers=bearer(Role.PLANNER))
    meta = response.json()
    assert meta["correlation_id"] == meta["causation_id"] == response.headers["x-request-id"]
    assert response.headers["x-correlation-id"] == response.headers["x-request-id"]


async def test_errors_carry_the_correlation_id_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/T-1", headers={"X-Correlation-ID": "c-1"})
    assert response.status_code == 401 and response.headers["x-correlation-id"] == "c-1"


@pytest.mark.parametrize("value", ["has space", "x" * 129, "ünïcode"])
async def test_a_bad_correlation_id_is_400(client: httpx.AsyncClient, value: str) -> None:
    headers = bearer(Role.PLANNER) | {"X-Correlation-ID": value}
    response = await client.post(
        "/meta", headers={k.encode(): v.encode() for k, v in headers.items()}
    )
    assert _problem(response, 400)["errors"][0]["field"] == "header.x-correlation-id"
    assert response.headers["x-correlation-id"] == response.headers["x-request-id"]


async def test_the_public_readiness_probe_names_failures_without_their_details(
    tmp_path: Path,
) -> None:
    app = _app(
        tmp_path,
        database_url="postgresql+asyncpg://secret-user:pw@127.0.0.1:9/aidline",
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert checks["kafka"]["ok"] is False
    assert "127.0.0.1" not in response.text
    assert "secret-user" not in response.text


async def test_with_its_database_and_no_broker_a_service_starts_degraded_not_unready(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 9: the broker is unreachable from the start.
    settings = ServiceSettings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    runtime = ServiceRuntime(
        settings, schema="test", migrations=MIGRATIONS, topic="aidline.t", source="/aidline/t"
    )
    app = create_app(runtime, title="test", routers=[_router()])
    await runtime.start()  # returns although Kafka cannot be reached
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def failed_once() -> bool:
                checks = (await http.get("/readyz")).json()["checks"]
                return bool(checks["task:topics"]["attempts"] >= 1)

            await eventually(failed_once, 30, "topic creation to fail and retry")
            response = await http.get("/readyz")
        body = response.json()
        assert response.status_code == 200 and body["status"] == "degraded", body
        checks = body["checks"]
        assert checks["database"]["ok"] is True and checks["kafka"]["ok"] is False
        topics = checks["task:topics"]
        assert topics["ok"] is False and topics["state"] in ("retrying", "starting")
        assert topics["last_error"] and "127.0.0.1" not in response.text
        assert checks["relay"]["ok"] is False  # waits for the topics: its real state
    finally:
        await runtime.stop()
