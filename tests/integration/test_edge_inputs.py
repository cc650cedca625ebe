"""Inputs that once reached a 500, or a column too short for them, answered with problem+json
(400/401/422) on PostgreSQL: headers the OpenAPI documents do not list (If-Match,
Idempotency-Key, X-Correlation-ID), token claims, paging bounds, and text PostgreSQL cannot
store (NUL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from services.allocation.app import MIGRATIONS as ALLOCATION_MIGRATIONS
from services.projection.generations import MIGRATIONS as PROJECTION_MIGRATIONS
from shared.auth import DEV_SECRET, MAX_HUB_CHARS, MAX_SUB_CHARS, Role, mint_token
from shared.db import Database
from shared.db.migrate import upgrade
from tests.infra import POSTGRES_URL, unique_schema
from tests.integration.inprocess import running

PROBLEM = "application/problem+json"
SERVICES = ["request", "allocation", "delivery", "projection"]


def bearer(
    *roles: Role, sub: str = "edge-tester", nation: str | None = None, hub: str | None = None
) -> dict[str, str]:
    token = mint_token(DEV_SECRET, sub, list(roles), nation=nation, hub=hub)
    return {"Authorization": f"Bearer {token}"}


def raw(headers: dict[str, str]) -> dict[bytes, bytes]:
    """`headers` as bytes, to send beside a header whose value is bytes as given."""
    return {name.encode(): value.encode() for name, value in headers.items()}


@asynccontextmanager
async def client_for(service: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(service) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
            yield http


@pytest.fixture(params=SERVICES)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    async with client_for(request.param) as http:
        yield request.param, http


@pytest.fixture
async def projection() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for("projection") as http:
        yield http


@pytest.fixture
async def allocation() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for("allocation") as http:
        yield http


@pytest.fixture
async def delivery() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for("delivery") as http:
        yield http


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    return body


# -- headers -------------------------------------------------------------------------------


# Servers hand headers over as latin-1: b"\xb2" is "²", which `str.isdigit` passes.
@pytest.mark.parametrize("value", [b'"\xb2"', b"\xb2", b'W/"\xd9\xa3"', b'"1e3"', b'"-1"'])
async def test_if_match_that_is_no_version_is_400(
    allocation: httpx.AsyncClient, value: bytes
) -> None:
    response = await allocation.post(
        "/allocations/AL-NONE/approve", headers=raw(bearer(Role.PLANNER)) | {b"If-Match": value}
    )
    assert _problem(response, 400)["type"] == "/problems/invalid-if-match"


@pytest.mark.parametrize("key", [b"k" * 201, b"", b"nul\x85inside", b"del\x7f"])
async def test_idempotency_key_that_does_not_fit_is_400(
    projection: httpx.AsyncClient, key: bytes
) -> None:
    response = await projection.post(
        "/admin/rebuild", headers=raw(bearer(Role.ADMIN)) | {b"Idempotency-Key": key}
    )
    body = _problem(response, 400)
    assert body["type"] == "/problems/invalid-idempotency-key"


async def test_correlation_id_longer_than_128_is_400(
    client: tuple[str, httpx.AsyncClient],
) -> None:
    _, http = client
    response = await http.get("/healthz", headers={"X-Correlation-ID": "c" * 129})
    _problem(response, 400)
    fits = await http.get("/healthz", headers={"X-Correlation-ID": "c" * 128})
    assert fits.status_code == 200
    assert fits.headers["X-Correlation-ID"] == "c" * 128


# -- token claims --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "scope"),
    [
        ("s" * (MAX_SUB_CHARS + 1), {}),
        ("nul\x00inside", {}),
        ("hub-operator", {"hub": "h" * (MAX_HUB_CHARS + 1)}),
        ("hub-operator", {"hub": "PL\x00RZE"}),
    ],
)
async def test_claims_that_do_not_fit_are_401(
    projection: httpx.AsyncClient, sub: str, scope: dict[str, str]
) -> None:
    response = await projection.get("/hubs", headers=bearer(Role.HUB, sub=sub, **scope))
    assert _problem(response, 401)["type"] == "/problems/invalid-token"


async def test_longest_claims_are_accepted(projection: httpx.AsyncClient) -> None:
    headers = bearer(Role.HUB, sub="s" * MAX_SUB_CHARS, hub="h" * MAX_HUB_CHARS)
    assert (await projection.get("/hubs", headers=headers)).status_code == 200


# -- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "1e20"},
        {"offset": str(10**20)},
        {"offset": "-1"},
        {"offset": "1.5"},
        {"limit": "100000"},
        {"limit": "501"},
        {"limit": "0"},
        {"limit": "1e3"},
    ],
)
async def test_board_paging_out_of_bounds_is_422(
    projection: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await projection.get(
        "/board/requirements", params=params, headers=bearer(Role.OBSERVER)
    )
    _problem(response, 422)


async def test_board_paging_within_bounds(projection: httpx.AsyncClient) -> None:
    for params in ({"limit": "500", "offset": "1000000"}, {"limit": "1"}, {}):
        response = await projection.get(
            "/board/requirements", params=params, headers=bearer(Role.OBSERVER)
        )
        assert response.status_code == 200, response.text


OUT_OF_BOUNDS = [
    ("allocation", "/allocations", {"limit": "501"}),
    ("allocation", "/allocations", {"offset": "1e20"}),
    ("delivery", "/shipments", {"limit": "501"}),
    ("delivery", "/shipments", {"offset": "1e20"}),
    ("request", "/streams/REQ-NONE/events", {"after_version": "1e20"}),
    ("request", "/streams/REQ-NONE/events", {"after_version": str(2**63)}),
    ("request", "/streams/REQ-NONE/events", {"limit": "501"}),
]


async def test_other_paging_out_of_bounds_is_422() -> None:
    for service in ("allocation", "delivery", "request"):
        async with client_for(service) as http:
            for owner, path, params in OUT_OF_BOUNDS:
                if owner == service:
                    response = await http.get(path, params=params, headers=bearer(Role.PLANNER))
                    _problem(response, 422)


async def test_shipments_take_the_contract_limit(delivery: httpx.AsyncClient) -> None:
    response = await delivery.get(
        "/shipments", params={"limit": "500"}, headers=bearer(Role.PLANNER)
    )
    assert response.status_code == 200, response.text


# -- text PostgreSQL cannot store ----------------------------------------------------------


async def test_nul_in_a_query_or_path_is_not_a_500(
    client: tuple[str, httpx.AsyncClient],
) -> None:
    service, http = client
    path = {
        "request": "/requirements/REQ-%00",
        "allocation": "/allocations?requirement_id=REQ-%00",
        "delivery": "/shipments?hub=PL%00RZE",
        "projection": "/audit/REQ-%00",
    }[service]
    response = await http.get(path, headers=bearer(Role.PLANNER))
    assert response.status_code < 500, response.text


async def test_the_event_stream_refuses_nul_before_streaming(projection: httpx.AsyncClient) -> None:
    response = await projection.get(
        "/events/stream", params={"subject": "REQ-\x00"}, headers=bearer(Role.OBSERVER)
    )
    assert _problem(response, 422)["errors"] == [
        {"field": "query.subject", "message": "unstorable character", "type": "string_chars"}
    ]


async def test_nul_in_a_body_is_422(allocation: httpx.AsyncClient) -> None:
    response = await allocation.post(
        "/allocations/AL-NONE/reject",
        headers=bearer(Role.PLANNER),
        json={"reason": "nul \x00 inside"},
    )
    _problem(response, 422)


# -- columns that were too short -----------------------------------------------------------


@pytest.mark.parametrize(
    ("migrations", "table", "widths", "before"),
    [
        (
            PROJECTION_MIGRATIONS,
            "audit",
            {"actor": (200, 300), "correlation_id": (100, 128)},
            "0003",
        ),
        (ALLOCATION_MIGRATIONS, "allocations", {"approved_by": (200, 300)}, "0002"),
    ],
)
async def test_a_schema_made_before_is_widened(
    migrations: Path, table: str, widths: dict[str, tuple[int, int]], before: str
) -> None:
    """A schema at the revision before, with its columns as they were, upgrades to the widths
    every principal and correlation id fits."""
    db = Database(POSTGRES_URL, unique_schema())
    try:
        await upgrade(db, migrations, before)
        async with db.engine.begin() as conn:
            for column, (old, _) in widths.items():
                await conn.execute(
                    sa.text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR({old})")
                )
        await upgrade(db, migrations)
        async with db.engine.connect() as conn:
            for column, (_, new) in widths.items():
                length = await conn.scalar(
                    sa.text(
                        "SELECT character_maximum_length FROM information_schema.columns WHERE"
                        " table_schema = :schema AND table_name = :table AND column_name = :c"
                    ),
                    {"schema": db.schema, "table": table, "c": column},
                )
                assert length == new, column
    finally:
        await db.drop_schema()
        await db.dispose()


async def test_nul_in_a_csv_import_is_422() -> None:
    csv = (
        "donor,item_code,quantity,source,available_from,value_eur,source_url\n"
        "PL,ART-155-HE,10,stock,2030-01-01,,https://example.org/\x00\n"
    )
    async with client_for("request") as http:
        response = await http.post(
            "/imports/pledges",
            content=csv.encode(),
            headers=bearer(Role.FORUM) | {"Content-Type": "text/csv"},
        )
    assert _problem(response, 422)["errors"] == [
        {"field": "body", "message": "unstorable character", "type": "string_chars"}
    ]
