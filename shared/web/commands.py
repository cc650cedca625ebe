"""How every state-changing POST runs: one transaction holding the command's events and its
idempotency record, and the same answer shape everywhere (DESIGN.md §4).

- `Idempotency-Key`: the same key with the same body returns the first response (nothing is
  appended again); with another body, 409.
- Responses: `{"id", "version", "event_id"}` with `ETag: "<version>"`.
- `If-Match: "<version>"`: compared with the aggregate's version by the handler (412 if stale).

A route hands its command to `handle_command`, which builds the handler's `CommandContext`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from shared.commands import CommandContext, CommandHandler, CommandResult
from shared.eventstore import ConcurrencyError, EventStore, Transaction
from shared.eventstore.tables import idempotency_keys
from shared.web.correlation import event_metadata
from shared.web.deps import authenticate
from shared.web.problems import Problem

MAX_KEY_LENGTH = 200
C = TypeVar("C")


UnitOfWork = Callable[[Transaction], Awaitable[CommandResult]]


def expected_version(request: Request) -> int | None:
    """The version in `If-Match` (`"3"`, `W/"3"` or `3`), or None when absent or `*`."""
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    # ASCII digits only: `isdigit` alone also passes "²" or "٣", which `int` refuses or reads.
    if not (value.isascii() and value.isdigit()):
        raise Problem(
            400,
            "Invalid If-Match",
            'Use an ETag such as "3".',
            kind="invalid-if-match",
        )
    return int(value)


async def handle_command(
    request: Request,
    handler: CommandHandler[C],
    command: C,
    *,
    append_only: bool = False,
) -> JSONResponse:
    """The one line of plumbing of a command route: run `handler(ctx, command)` through
    `run_command` with the caller (authorized by the route's `Authorize` dependency), the
    metadata its events record, its `If-Match` and the service's handler dependencies."""
    principal = authenticate(request)
    runtime = request.app.state.runtime
    context: dict[str, Any] = {
        "principal": principal,
        "meta": event_metadata(request, principal),
        "expected_version": expected_version(request),
        "deps": getattr(request.app.state, "handler_deps", None),
    }
    return await run_command(
        request,
        runtime.store,
        lambda tx: handler(CommandContext(tx, **context), command),
        append_only=append_only,
    )


async def run_command(
    request: Request,
    store: EventStore,
    handler: UnitOfWork,
    *,
    scope: str = "",
    append_only: bool = False,
) -> JSONResponse:
    """Run `handler` in one unit of work and answer for it.

    `append_only`: the handler only reads and appends events (`EventStore.append_only`): its
    events and the idempotency record commit in one statement. Leave it off for handlers that
    write tables of their own through `tx.conn`."""
    key = request.headers.get("idempotency-key")
    # Printable, so that it fits the key column of every backend (no NUL, no control bytes).
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
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
