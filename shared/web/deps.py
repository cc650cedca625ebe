"""FastAPI dependencies the routes of every service use, as `Annotated` aliases."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from shared.auth import AccessPolicy, Principal, Rule, TokenError, TokenVerifier
from shared.auth.tokens import KeysUnavailable
from shared.runtime import ServiceRuntime
from shared.settings import is_loopback
from shared.web.paging import Page, page_params
from shared.web.problems import Problem

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="aidline"'}
# RFC 6750 §3: error_description is a quoted string of visible ASCII without `"` and `\`.
_UNSAFE_IN_CHALLENGE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


# Dependencies without I/O are `async def`: FastAPI would run a plain `def` in a worker thread,
# a hop per dependency per request for nothing.


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
PageDep = Annotated[Page, Depends(page_params)]


def _invalid_token(reason: str) -> Problem:
    description = _UNSAFE_IN_CHALLENGE.sub("?", reason)
    challenge = f'Bearer realm="aidline", error="invalid_token", error_description="{description}"'
    return Problem(
        401,
        "Unauthorized",
        f"The bearer token is not valid: {reason}.",
        kind="invalid-token",
        headers={"WWW-Authenticate": challenge},
    )


async def authenticate(request: Request) -> Principal:
    """The verified principal of the request's bearer token (401 without a valid one)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "A bearer token is required (Authorization: Bearer <token>).",
            kind="missing-token",
            headers=BEARER_CHALLENGE,
        )
    principal = await verify(request, token.strip())
    request.state.principal = principal
    return principal


async def verify(request: Request, token: str) -> Principal:
    """Who `token` names: 401 when it is not valid, 503 when the keys cannot be fetched."""
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify_async(token)
    except TokenError as exc:
        raise _invalid_token(str(exc)) from exc
    except KeysUnavailable as exc:
        raise Problem(
            503,
            "Keys unavailable",
            f"The token cannot be checked now: {exc}.",
            kind="keys-unavailable",
            headers={"Retry-After": "5"},
        ) from exc


async def principal_or_none(request: Request) -> Principal | None:
    """The request's principal if it carries a valid token, else None (never raises)."""
    try:
        return await authenticate(request)
    except Problem:
        return None


def from_loopback(request: Request) -> bool:
    """Whether the client is on this machine. Behind a proxy on this machine uvicorn puts the
    forwarded client here (it trusts X-Forwarded-For from 127.0.0.1 only), so a remote client
    does not pass for a local one."""
    return request.client is not None and is_loopback(request.client.host)


class Authorize:
    """`Depends(Authorize(policy, "rule"))`: 401 without a valid token, 403 without the role."""

    def __init__(self, policy: AccessPolicy, name: str) -> None:
        self.policy = policy
        self.name = name
        self.rule: Rule = policy[name]  # a route naming no rule fails at import

    async def __call__(self, request: Request) -> Principal:
        principal = await authenticate(request)
        if not self.rule.allows(principal.roles):
            allowed = ", ".join(sorted(self.rule.roles))
            raise Problem(
                403,
                "Forbidden",
                f"This needs one of the roles: {allowed}.",
                kind="forbidden-role",
            )
        return principal
