"""What the CLI commands that call a service's admin or stream endpoints share: a token."""

from __future__ import annotations

import os

from shared.auth import DEV_SECRET, mint_token


def bearer(token: str | None, *roles: str) -> dict[str, str]:
    """The given token, or a development token with `roles` (signed with JWT_SECRET or the
    development secret: only a development deployment accepts it)."""
    if token is None:
        secret = os.environ.get("JWT_SECRET", DEV_SECRET)
        token = mint_token(secret, "aidline-cli", list(roles), ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}
