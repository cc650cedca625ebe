"""How every state-changing POST runs: one transaction holding the command's events and its
idempotency record, and the same answer shape everywhere (DESIGN.md §4).

- `Idempotency-Key`: the same key with the same body returns the first response (nothing is
  appended again); with another body, 409.
- Responses: `{"id", "version", "event_id"}` with `ETag: "<version>"`.
- `If-Match: "<version>"`: compared with the aggregate's version by the handler (412 if stale).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from shared.eventstore import ConcurrencyError, EventStore, Transaction
from shared.eventstore.tables import idempotency_keys
from shared.web.problems import Problem

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class CommandResult:
    """What a command handler returns; `body` replaces the default answer when given."""

    id: str
    version: int
    event_id: str | None = None
    status_code: int = 200
    body: dict[str, Any] | None = None


CommandHandler = Callable[[Transaction], Awaitable[CommandResult]]


def expected_version(request: Request) -> int | None:
    """The version in `If-Match` (`"3"`, `W/"3"` or `3`), or None when absent or `*`."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise Problem(
            400,
            "Invalid If-Match",
            'Use an ETag such as "3".',
            kind="invalid-if-match",
        )
    return int(value)


def check_version(request: Request, current: int) -> None:
    ensure_version(expected_version(request), current)


def ensure_version(wanted: int | None, current: int) -> None:
    """412 unless `wanted` (from `expected_version`, read by the route) is None or `current`.

    For handlers that receive the expected version inside their command instead of the request.
    """
    if wanted is not None and wanted != current:
        raise Problem(
            412,
            "Precondition failed",
            f"The resource is at version {current}, not {wanted}; reload it and try again.",
            kind="version-mismatch",
            headers={"ETag": f'"{current}"'},
        )


async def run_command(
    request: Request,
    store: EventStore,
    handler: CommandHandler,
    *,
    scope: str = "",
    append_only: bool = False,
) -> JSONResponse:
    """Run `handler` in one unit of work and answer for it.

    `append_only`: the handler only reads and appends events (`EventStore.append_only`): its
    events and the idempotency record commit in one statement. Leave it off for handlers that
    write tables of their own through `tx.conn`."""
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise Problem(
            400,
            "Invalid Idempotency-Key",
            f"Use 1 to {MAX_KEY_LENGTH} characters.",
            kind="invalid-idempotency-key",
        )
    body_hash = hashlib.sha256(
        request.method.encode() + request.scope["path"].encode() + b"\0" + await request.body()
    ).hexdigest()
    principal = getattr(request.state, "principal", None)
    key_scope = scope or (principal.sub if principal is not None else "")
    if key is not None:
        replay = await _replay(store, key, key_scope, body_hash)
        if replay is not None:
            return replay
    try:
        async with store.append_only() if append_only else store.transaction() as tx:
            result = await handler(tx)
            event_id = tx.last_event_id
            body = result.body or {
                "id": result.id,
                "version": result.version,
                "event_id": result.event_id or (str(event_id) if event_id else None),
            }
            headers = {"ETag": f'"{result.version}"'}
            if key is not None:
                tx.add_row(
                    idempotency_keys,
                    {
                        "key": key,
                        "scope": key_scope,
                        "request_hash": body_hash,
                        "status_code": result.status_code,
                        "response": body,
                        "headers": headers,
                        "created_at": datetime.now(UTC),
                    },
                )
    except ConcurrencyError as exc:
        raise Problem(
            409,
            "Conflict",
            "The resource changed while the command ran; retry it.",
            kind="concurrent-update",
        ) from exc
    except IntegrityError:
        # Another request with the same key won the race: answer as it did.
        if key is not None:
            replay = await _replay(store, key, key_scope, body_hash)
            if replay is not None:
                return replay
        raise
    return JSONResponse(body, status_code=result.status_code, headers=headers)


async def _replay(store: EventStore, key: str, scope: str, body_hash: str) -> JSONResponse | None:
    async with store.db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.key == key, idempotency_keys.c.scope == scope
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != body_hash:
        raise Problem(
            409,
            "Idempotency key reused",
            "This Idempotency-Key was used with a different request body.",
            kind="idempotency-key-conflict",
        )
    headers = dict(row.headers) | {"Idempotent-Replayed": "true"}
    return JSONResponse(row.response, status_code=row.status_code, headers=headers)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
