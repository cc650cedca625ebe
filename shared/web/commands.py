"""How every state-changing POST runs: one transaction holding the command's events and its
idempotency record, and the same answer shape everywhere (DESIGN.md §4).

- `Idempotency-Key`: the same key with the same body returns the first response (nothing is
  appended again); with another body, 409. The key is reserved before the command runs, so a
  request arriving while the first still runs waits for its answer (bounded) instead of
  running the command again against the state the first is changing.
- Responses: `{"id", "version", "event_id"}` with `ETag: "<version>"`.
- `If-Match: "<version>"`: compared with the aggregate's version by the handler (412 if stale).

A route hands its command to `handle_command`, which builds the handler's `CommandContext`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from shared.commands import CommandContext, CommandHandler, CommandResult
from shared.db.rows import aware
from shared.eventstore import ConcurrencyError, EventStore, Transaction
from shared.eventstore.tables import idempotency_keys, idempotency_reservations
from shared.web.correlation import event_metadata
from shared.web.deps import authenticate
from shared.web.problems import Problem

MAX_KEY_LENGTH = 200
# How long a request waits for another one with its Idempotency-Key to finish (then 409 with
# Retry-After), and how often it looks.
KEY_WAIT_SECONDS = 10.0
KEY_POLL_SECONDS = (0.005, 0.1)  # first, longest
# A reservation older than this was left by a process that died while its command ran: another
# request takes it over. (Should the first still be running, its record's primary key refuses
# the second record, and with it the second unit of work: one stored result either way.)
STALE_RESERVATION = timedelta(seconds=60)
# The requests of this process running a command under an Idempotency-Key: (store, scope,
# key) -> (their body's hash, done once the answer is stored, or the command failed, and the
# key released).
_HOLDERS: dict[tuple[int, str, str], tuple[str, asyncio.Future[None]]] = {}
C = TypeVar("C")


UnitOfWork = Callable[[Transaction], Awaitable[CommandResult]]


class CommandResponse(JSONResponse):
    """A command's answer, encoded by orjson: the same JSON as `JSONResponse` (compact, UTF-8,
    keys in order) in a fraction of `json.dumps`'s time, on every command. What orjson refuses
    (keys that are not strings, integers beyond 64 bits) goes to `JSONResponse`'s encoder as
    before; a NaN, which no command answer holds (inputs refuse it), would be null, not a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


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
    principal = await authenticate(request)
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
    if key is None:  # nothing to remember, nothing to compare
        return await _run(request, store, handler, None, "", "", append_only)
    body_hash = hashlib.sha256(
        request.method.encode() + request.scope["path"].encode() + b"\0" + await request.body()
    ).hexdigest()
    principal = getattr(request.state, "principal", None)
    key_scope = scope or (principal.sub if principal is not None else "")
    # Duplicates within this process wait for the first in memory, not by polling the
    # database: on SQLite every look takes the one write lock, and sixteen pollers starved
    # the first request's own writes past the lock's timeout.
    local = (id(store), key_scope, key)
    while (holder := _HOLDERS.get(local)) is not None and holder[0] == body_hash:
        try:
            await asyncio.wait_for(asyncio.shield(holder[1]), KEY_WAIT_SECONDS)
        except TimeoutError:
            break  # the database decides (409 idempotency-key-in-use)
        replay = await _replay(store, key, key_scope, body_hash)
        if replay is not None:
            return replay
    # Another body under the key (or a holder that timed out): the database decides.
    done = asyncio.get_running_loop().create_future()
    mine = _HOLDERS.setdefault(local, (body_hash, done))[1] is done
    try:
        replay, reserved = await _reserve(store, key, key_scope, body_hash)
        if replay is not None:
            return replay
        try:
            return await _run(request, store, handler, key, key_scope, body_hash, append_only)
        finally:
            if reserved is not None:
                await _release(store, key, key_scope, reserved)
    finally:
        if mine:
            del _HOLDERS[local]
        done.set_result(None)


async def _run(
    request: Request,
    store: EventStore,
    handler: UnitOfWork,
    key: str | None,
    key_scope: str,
    body_hash: str,
    append_only: bool,
) -> JSONResponse:
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
    return CommandResponse(body, status_code=result.status_code, headers=headers)


async def _reserve(
    store: EventStore, key: str, scope: str, body_hash: str
) -> tuple[JSONResponse | None, datetime | None]:
    """Reserve `key` for this request, or answer as the request that used it did: (the
    replayed answer, None) or (None, the reservation's time, which `_release` names).

    What it costs: a keyed command makes two more short writes than one without (this
    reservation and its release), each its own statement outside any transaction and outside
    the store's commit-order lock, so the one-statement append stays one statement; on
    PostgreSQL the table is UNLOGGED, so neither waits for a WAL flush. Commands without a
    key pay nothing. A request that finds the key reserved polls (5 ms, doubling to 100 ms)."""
    deadline = time.monotonic() + KEY_WAIT_SECONDS
    pause = KEY_POLL_SECONDS[0]
    # Try to take the key only when nobody holds it: a waiter only reads meanwhile (on SQLite
    # every attempt would queue for the database's one write lock, holding a connection).
    free = True
    while True:
        if free:
            reserved_at = datetime.now(UTC)
            try:
                async with store.log.append_connection() as (conn, _):
                    await conn.execute(
                        idempotency_reservations.insert().values(
                            key=key, scope=scope, request_hash=body_hash, reserved_at=reserved_at
                        )
                    )
            except IntegrityError:
                free = False  # another request holds it
            else:
                # The request that held it may have finished (record written, then released)
                # between our looks.
                replay = await _replay(store, key, scope, body_hash)
                if replay is not None:
                    await _release(store, key, scope, reserved_at)
                return replay, (None if replay is not None else reserved_at)
        replay = await _replay(store, key, scope, body_hash)
        if replay is not None:
            return replay, None
        async with store.db.engine.connect() as conn:
            holder = (
                await conn.execute(
                    sa.select(idempotency_reservations).where(
                        idempotency_reservations.c.key == key,
                        idempotency_reservations.c.scope == scope,
                    )
                )
            ).first()
        if holder is None:
            free = True  # released without a record (the command failed): try again at once
            continue
        if aware(holder.reserved_at) < datetime.now(UTC) - STALE_RESERVATION:
            await _release(store, key, scope, holder.reserved_at)
            free = True
            continue
        if holder.request_hash != body_hash:
            raise _key_conflict()
        if time.monotonic() > deadline:
            raise Problem(
                409,
                "Request in progress",
                "Another request with this Idempotency-Key is still running; retry shortly.",
                kind="idempotency-key-in-use",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, KEY_POLL_SECONDS[1])


async def _release(store: EventStore, key: str, scope: str, reserved_at: datetime) -> None:
    """Drop the reservation made at `reserved_at` (not one another request took over since)."""
    async with store.log.append_connection() as (conn, _):
        await conn.execute(
            idempotency_reservations.delete().where(
                idempotency_reservations.c.key == key,
                idempotency_reservations.c.scope == scope,
                idempotency_reservations.c.reserved_at == reserved_at,
            )
        )


def _key_conflict() -> Problem:
    return Problem(
        409,
        "Idempotency key reused",
        "This Idempotency-Key was used with a different request body.",
        kind="idempotency-key-conflict",
    )


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
        raise _key_conflict()
    headers = dict(row.headers) | {"Idempotent-Replayed": "true"}
    return CommandResponse(row.response, status_code=row.status_code, headers=headers)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
