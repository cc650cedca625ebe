"""POST /milestones/batch: many milestones at once, from field staff who were offline for hours.

- Each row is validated on its own: a malformed row is rejected, the others go on.
- Rows are applied in the order they happened (`at`); rows at the same moment in milestone order
  (dispatch, arrive, inspect, depart, delay/loss, handover, receive), then as uploaded. A row
  that does not fit the shipment's state at its turn is rejected with the reason.
- Each row is all or nothing (a savepoint holds its events, its table update and its record).
- Each row is checked against the access rule of its milestone (role, hub, nation).
- Idempotent per row: a row applied once (same uploader, same `row_id`) answers as it did the
  first time when sent again; the same `row_id` with other content is rejected. Rejected rows
  are not remembered, so a row can be re-sent once it fits (e.g. after the missing dispatch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.delivery import tables
from services.delivery.commands import BatchRow, InvalidRow, MilestoneBatch
from services.delivery.handlers import record_milestone
from shared.commands import CommandContext, CommandResult
from shared.domain import DomainError, Forbidden, NotFound, TooLarge
from shared.eventstore import ConcurrencyError
from shared.web.problems import Problem, problem_for

RANK = {
    "dispatch": 0,
    "arrive": 1,
    "inspect": 2,
    "depart": 3,
    "delay": 4,
    "report_loss": 4,
    "handover": 5,
    "receive": 6,
}


def application_order(rows: Sequence[tuple[int, BatchRow]]) -> list[tuple[int, BatchRow]]:
    """(upload index, row) pairs in the order to apply them."""
    return sorted(rows, key=lambda pair: (pair[1].at, RANK[pair[1].milestone], pair[0]))


async def record_batch(ctx: CommandContext[None], command: MilestoneBatch) -> CommandResult:
    """Each row answered on its own; the upload's result is the list of the rows' answers."""
    results: list[dict[str, Any]] = [{} for _ in command.rows]
    valid: list[tuple[int, BatchRow]] = []
    for index, row in enumerate(command.rows):
        if isinstance(row, InvalidRow):
            problem = Problem(
                422,
                "Invalid row",
                "The row does not match its milestone's schema.",
                errors=list(row.errors),
            )
            results[index] = _rejected(_as_uploaded(index, row.raw), problem)
        else:
            valid.append((index, row))
    # A row expects no version: an If-Match sent with the upload is no row's.
    row_ctx = replace(ctx, expected_version=None)
    for order, (index, valid_row) in enumerate(application_order(valid)):
        results[index] = await _apply_row(row_ctx, index, valid_row) | {"applied_as": order}
    counts = {status: 0 for status in ("applied", "replayed", "rejected")}
    for result in results:
        counts[result["status"]] += 1
    body = {"results": results, **counts}
    return CommandResult(id="milestones.batch", version=0, body=body)


async def _apply_row(ctx: CommandContext[None], index: int, row: BatchRow) -> dict[str, Any]:
    described = {
        "index": index,
        "row_id": row.row_id,
        "shipment_id": row.command.shipment_id,
        "milestone": row.milestone,
    }
    scope = ctx.principal.sub
    first = await tables.applied_row(ctx.tx.conn, scope, row.row_id)
    if first is not None:
        if first.request_hash != row.digest:
            problem = Problem(
                409,
                "Row id reused",
                f"Row {row.row_id} was applied before with other content; give new rows new ids.",
            )
            return _rejected(described, problem)
        return {**first.result, **described, "status": "replayed"}
    try:
        async with ctx.tx.savepoint():
            # Dated when it happened on the ground, not when the upload reached us.
            dated = replace(ctx, meta=ctx.meta.occurred(row.at))
            result = await record_milestone(dated, row.command)
            applied = {
                **described,
                "status": "applied",
                "code": 200,
                "version": result.version,
                "event_id": result.event_id,
            }
            await tables.record_applied_row(ctx.tx.conn, scope, row.row_id, row.digest, applied)
    except (DomainError, NotFound, Forbidden, TooLarge) as exc:
        return _rejected(described, problem_for(exc))
    except (ConcurrencyError, IntegrityError):  # another upload changed the shipment meanwhile
        problem = Problem(
            409,
            "Conflict",
            "The shipment changed while this row was applied; send it again.",
            kind="concurrent-update",
        )
        return _rejected(described, problem)
    return applied


def _as_uploaded(index: int, raw: Mapping[str, object]) -> dict[str, Any]:
    """A malformed row named as it was uploaded, whatever its fields hold."""
    return {"index": index} | {key: raw.get(key) for key in ("row_id", "shipment_id", "milestone")}


def _rejected(described: dict[str, Any], problem: Problem) -> dict[str, Any]:
    """The row's answer: the problem it was refused with (RFC 9457 members, per row)."""
    body = problem.body()
    return {
        **described,
        "status": "rejected",
        "code": problem.status,
        "type": body["type"],
        "title": body["title"],
        "detail": body.get("detail"),
        **({"errors": body["errors"]} if "errors" in body else {}),
    }
