"""What an operator does with a service's dead letters (`aidline dlq`, `/admin/dead-letters`):
counts and errors per consumer, a page of letters, one letter in full, and the replay of a
selection — one letter at a time through its consumer (`redrive`), in the order they were
dead-lettered.

Every consumer of a service keeps its letters in the service's one database (the projection's
in its active generation's), so the letters are read from the database of the consumers given.
Replay needs the consumer running in this process (it has the handler); listing does not.
"""

from __future__ import annotations

import base64
import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from shared.db import Database
from shared.db.rows import aware
from shared.domain.errors import DomainError, NotFound
from shared.eventstore.tables import dead_letters
from shared.messaging import envelope
from shared.messaging.consumer.deadletter import original_headers
from shared.messaging.consumer.loop import EventConsumer
from shared.messaging.consumer.redrive import Outcome, Replay
from shared.messaging.envelope import EnvelopeError

State = Literal["pending", "replayed", "all"]
# The order letters are listed and replayed in: as they were dead-lettered.
ORDER = (
    dead_letters.c.created_at,
    dead_letters.c.original_topic,
    dead_letters.c.original_partition,
    dead_letters.c.original_offset,
    dead_letters.c.id,
)
# How many failures a 409 names (each with its error).
FAILURES_SHOWN = 5


@dataclass(frozen=True)
class ReplayDeadLetters:
    """Replay the letters `ids` (of any consumer of the service), or the letters of `consumer`
    not replayed yet that match every filter given (none: all of them) — at most `limit`, after
    passing over the first `skip` (those an earlier call left failed)."""

    ids: tuple[uuid.UUID, ...] = ()
    consumer: str | None = None
    topic: str | None = None
    partition: int | None = None
    from_offset: int | None = None  # original offsets, both ends included
    to_offset: int | None = None
    since: datetime | None = None  # dead-lettered at, both ends included
    until: datetime | None = None
    limit: int = 100
    skip: int = 0


@dataclass
class ReplayReport:
    results: list[Replay] = field(default_factory=list)
    # Letters of the selection still waiting beyond those tried (call again with `skip`).
    remaining: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    def as_dict(self) -> dict[str, Any]:
        counts = {o.value.replace("-", "_"): self.count(o) for o in Outcome}
        results = [
            {
                "letter_id": str(r.letter),
                "consumer": r.consumer,
                "outcome": r.outcome,
                "error": r.error,
            }
            for r in self.results
        ]
        return counts | {"results": results, "remaining": self.remaining}


def _database(consumers: Sequence[EventConsumer]) -> Database | None:
    dbs = {id(c.store.db): c.store.db for c in consumers}
    if len(dbs) > 1:
        raise RuntimeError("a service's consumers keep their dead letters in one database")
    return next(iter(dbs.values()), None)


# -- reading -------------------------------------------------------------------------------------


async def summary(consumers: Sequence[EventConsumer]) -> list[dict[str, Any]]:
    """Per consumer: letters pending and replayed, and the pending ones per error type."""
    db = _database(consumers)
    if db is None:
        return []
    c = dead_letters.c
    pending = sa.case((c.replayed_at.is_(None), 1), else_=0)
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    c.consumer,
                    c.error_type,
                    sa.func.sum(pending).label("pending"),
                    sa.func.count().label("letters"),
                )
                .group_by(c.consumer, c.error_type)
                .order_by(c.consumer, c.error_type)
            )
        ).all()
    by_consumer: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_consumer.setdefault(
            row.consumer, {"consumer": row.consumer, "pending": 0, "replayed": 0, "errors": []}
        )
        waiting = int(row.pending or 0)
        entry["pending"] += waiting
        entry["replayed"] += int(row.letters) - waiting
        if waiting:
            entry["errors"].append({"error_type": row.error_type, "pending": waiting})
    return list(by_consumer.values())


async def page(
    consumers: Sequence[EventConsumer],
    *,
    consumer: str | None,
    state: State,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of letters, oldest first, and how many match."""
    db = _database(consumers)
    items: list[dict[str, Any]] = []
    total = 0
    if db is not None:
        where = _state(state)
        if consumer is not None:
            where &= dead_letters.c.consumer == consumer
        async with db.engine.connect() as conn:
            total = int(
                await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters).where(where))
                or 0
            )
            rows = await conn.execute(
                sa.select(dead_letters).where(where).order_by(*ORDER).limit(limit).offset(offset)
            )
            items = [_view(row) for row in rows]
    return items, total


async def letter(consumers: Sequence[EventConsumer], letter_id: uuid.UUID) -> dict[str, Any]:
    """One letter in full: its record's key, headers and value, and the event decoded."""
    db = _database(consumers)
    row = None
    if db is not None:
        async with db.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(dead_letters).where(dead_letters.c.id == letter_id))
            ).first()
    if row is None:
        raise NotFound(f"There is no dead letter {letter_id} in this service.")
    headers = original_headers(row)
    view = _view(row) | {
        "headers": [[name, _text(value)] for name, value in headers],
        "dlq_headers": [[k, base64.b64decode(v).decode(errors="replace")]
                        for k, v in row.headers if k.startswith("dlq_")],
        "value": _text(row.value),
        "envelope": None,
        "decode_error": None,
    }  # fmt: skip
    try:
        event = envelope.decode(headers, row.value)
    except EnvelopeError as exc:
        view["decode_error"] = str(exc)
    else:
        view["envelope"] = {
            "event_id": str(event.event_id),
            "type": event.event_type,
            "schema_version": event.schema_version,
            "source": event.source,
            "subject": event.subject,
            "time": event.time.isoformat(),
            "stream_version": event.stream_version,
            "position": event.position,
            "actor": event.meta.actor,
            "correlation_id": event.meta.correlation_id,
            "causation_id": event.meta.causation_id,
            "data": event.data,
        }
    return view


def _state(state: State) -> sa.ColumnElement[bool]:
    replayed = dead_letters.c.replayed_at
    return {"pending": replayed.is_(None), "replayed": replayed.is_not(None)}.get(state, sa.true())


def _view(row: sa.Row[Any]) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return aware(value).isoformat() if value is not None else None

    return {
        "letter_id": str(row.id),
        "consumer": row.consumer,
        "state": "pending" if row.replayed_at is None else "replayed",
        "dlq_topic": row.topic,
        "topic": row.original_topic,
        "partition": row.original_partition,
        "offset": row.original_offset,
        "key": _text(row.key),  # its stream, for an Aidline event
        "event_id": str(row.event_id) if row.event_id is not None else None,
        "event_type": row.event_type,
        "error_type": row.error_type,
        "error": row.error,
        "attempts": row.attempts,
        "created_at": when(row.created_at),
        "published_at": when(row.published_at),
        "replayed_at": when(row.replayed_at),
        "replayed_by": row.replayed_by,
        "replay_error": row.replay_error,
    }


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value is not None else None


# -- replaying -----------------------------------------------------------------------------------


async def replay(
    consumers: Sequence[EventConsumer], command: ReplayDeadLetters, actor: str
) -> ReplayReport:
    """Replay the letters `command` selects, one by one, oldest first. Not one unit of work: each
    letter commits (or stays) on its own, so one that fails again holds none of the others back.
    Raises NotFound for letters or a consumer this service does not have, and DomainError
    (`replay-failed`, 409) when every letter named by id failed again (a consumer's letters are
    answered letter by letter: an operator pages through them with `skip`)."""
    running = {c.name: c for c in consumers}
    db = _database(consumers)
    if command.ids:
        letters = await _by_id(db, command.ids)
        remaining = 0
    else:
        assert command.consumer is not None
        if command.consumer not in running:
            names = ", ".join(sorted(running)) or "none"
            raise NotFound(
                f"No consumer named {command.consumer!r} runs in this service "
                f"(its consumers: {names})."
            )
        letters, total = await _selected(db, command)
        remaining = total
    report = ReplayReport()
    for letter_id, name in letters:
        consumer = running.get(name)
        if consumer is None:
            raise NotFound(f"Dead letter {letter_id} is of consumer {name!r}, which does not run "
                           "in this service: it cannot be replayed here.")  # fmt: skip
        result = await consumer.replay(letter_id, actor)
        if result is not None:
            report.results.append(result)
    if not command.ids:
        report.remaining = max(0, remaining - command.skip - len(letters))
    failed = [r for r in report.results if r.outcome is Outcome.FAILED]
    if command.ids and failed and len(failed) == len(report.results):
        shown = "; ".join(f"{r.letter}: {r.error}" for r in failed[:FAILURES_SHOWN])
        more = f" (and {len(failed) - FAILURES_SHOWN} more)" if len(failed) > FAILURES_SHOWN else ""
        raise DomainError(
            f"The replay failed again; the letters stay: {shown}{more}",
            kind="replay-failed",
            title="Replay failed",
        )
    return report


async def _by_id(db: Database | None, ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    wanted = list(dict.fromkeys(ids))
    found: dict[uuid.UUID, str] = {}
    if db is not None:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(dead_letters.c.id, dead_letters.c.consumer).where(
                    dead_letters.c.id.in_(wanted)
                )
            )
            found = {row.id: row.consumer for row in rows}
    missing = [str(i) for i in wanted if i not in found]
    if missing:
        raise NotFound(f"There is no dead letter {', '.join(missing[:10])} in this service.")
    return [(i, found[i]) for i in wanted]


async def _selected(
    db: Database | None, command: ReplayDeadLetters
) -> tuple[list[tuple[uuid.UUID, str]], int]:
    """The pending letters of the command's consumer and filters to try now, and how many
    there are in all."""
    if db is None:
        return [], 0
    c = dead_letters.c
    where = (c.consumer == command.consumer) & c.replayed_at.is_(None)
    for column, compare, value in (
        (c.original_topic, operator.eq, command.topic),
        (c.original_partition, operator.eq, command.partition),
        (c.original_offset, operator.ge, command.from_offset),
        (c.original_offset, operator.le, command.to_offset),
        (c.created_at, operator.ge, command.since),
        (c.created_at, operator.le, command.until),
    ):
        if value is not None:
            where &= compare(column, value)
    async with db.engine.connect() as conn:
        total = int(
            await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters).where(where))
            or 0
        )
        rows = await conn.execute(
            sa.select(c.id, c.consumer)
            .where(where)
            .order_by(*ORDER)
            .limit(command.limit)
            .offset(command.skip)
        )
        return [(row.id, row.consumer) for row in rows], total
