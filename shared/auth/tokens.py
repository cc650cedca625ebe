"""Bearer JWTs: verification (HS256 secret in development) and minting for development."""

from __future__ import annotations

import time
from typing import Any

import jwt

from shared.auth.policy import Role
from shared.auth.principal import Principal

DEV_SECRET = "aidline-development-secret-do-not-use-in-production"
ISSUER = "aidline"
AUDIENCE = "aidline"


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed by us."""


class TokenVerifier:
    def __init__(
        self, *, secret: str | None = None, public_key: str | None = None, leeway: int = 10
    ) -> None:
        if not secret and not public_key:
            raise ValueError("a JWT secret or public key is required")
        self._key: Any = public_key or secret
        self._algorithms = ["RS256"] if public_key else ["HS256"]
        self._leeway = leeway

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["sub", "exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        raw_roles = claims.get("roles", [])
        if not isinstance(raw_roles, list):
            raise TokenError("roles must be a list")
        try:
            roles = frozenset(Role(r) for r in raw_roles)
        except ValueError as exc:
            raise TokenError(f"unknown role in token: {exc}") from exc
        nation = claims.get("nation")
        hub = claims.get("hub")
        return Principal(
            sub=str(claims["sub"]),
            roles=roles,
            nation=str(nation).upper() if nation else None,
            hub=str(hub) if hub else None,
        )


def mint_token(
    secret: str,
    sub: str,
    roles: list[Role] | list[str],
    *,
    nation: str | None = None,
    hub: str | None = None,
    ttl_seconds: int = 12 * 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": [str(r) for r in roles],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if nation:
        claims["nation"] = nation.upper()
    if hub:
        claims["hub"] = hub
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
